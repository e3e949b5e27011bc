import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KithError } from '../common/errors.ts';

/** Where the mail client finds the node's IMAP and SMTP servers. */
export interface MailSettings {
  /** The user's e-mail address (also the login name). */
  email: string;
  /** IMAP server (STARTTLS on this port). */
  imap: { host: string; port: number };
  /** SMTP submission server (STARTTLS on this port). */
  smtp: { host: string; port: number };
}

/** Settings of the autoconfig HTTP server. */
export interface AutoconfigOptions extends MailSettings {
  /** Address to listen on (loopback). */
  host: string;
  /** Port; 0 = ephemeral. */
  port: number;
}

/** The HTTP server answering Thunderbird's autoconfig request. */
export interface AutoconfigServer {
  /** Starts listening; resolves to the port bound. */
  start(): Promise<{ port: number }>;
  /** Closes the listener and its connections. */
  stop(): Promise<void>;
}

const PATHS = new Set(['/.well-known/autoconfig/mail/config-v1.1.xml', '/mail/config-v1.1.xml']);

function xmlEscape(s: string): string {
  return s.replace(
    /[<>&'"]/g,
    (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', "'": 'apos', '"': 'quot' }[c]};`,
  );
}

/** The Thunderbird autoconfig document (config-v1.1) for this node. */
export function autoconfigXml(s: MailSettings): string {
  const domain = s.email.split('@')[1] ?? 'localhost';
  const e = xmlEscape;
  return `<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="${e(domain)}">
    <domain>${e(domain)}</domain>
    <displayName>Kith (${e(s.email)})</displayName>
    <displayShortName>Kith</displayShortName>
    <incomingServer type="imap">
      <hostname>${e(s.imap.host)}</hostname>
      <port>${s.imap.port}</port>
      <socketType>STARTTLS</socketType>
      <authentication>password-cleartext</authentication>
      <username>${e(s.email)}</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>${e(s.smtp.host)}</hostname>
      <port>${s.smtp.port}</port>
      <socketType>STARTTLS</socketType>
      <authentication>password-cleartext</authentication>
      <username>${e(s.email)}</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>
`;
}

/** What `kith mail-settings` prints: the autoconfig URL and the manual settings. */
export function mailSettingsText(s: MailSettings & { autoconfigUrl?: string }): string {
  const lines = [
    `Mail account for ${s.email}`,
    '',
    s.autoconfigUrl ? `Autoconfig (Thunderbird): ${s.autoconfigUrl}` : 'Autoconfig: not running',
    '',
    'Manual settings:',
    `  Incoming (IMAP):  ${s.imap.host}  port ${s.imap.port}  STARTTLS  normal password`,
    `  Outgoing (SMTP):  ${s.smtp.host}  port ${s.smtp.port}  STARTTLS  normal password`,
    `  User name:        ${s.email}`,
    '  Password:         the mail password set at `kith init`',
    '',
    'The certificate is self-signed for localhost: accept it once when the client asks.',
  ];
  return lines.join('\n') + '\n';
}

/** Creates the loopback HTTP server serving the autoconfig XML. */
export function createAutoconfigServer(opts: AutoconfigOptions): AutoconfigServer {
  let server: Server | null = null;
  const body = Buffer.from(autoconfigXml(opts), 'utf8');
  return {
    async start() {
      server = createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0]!;
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          res.writeHead(405, { allow: 'GET, HEAD' }).end();
        } else if (!PATHS.has(path)) {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        } else {
          res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8', 'content-length': body.length });
          res.end(req.method === 'HEAD' ? undefined : body);
        }
      });
      const s = server;
      const port = await new Promise<number>((resolve, reject) => {
        s.once('error', (err: NodeJS.ErrnoException) =>
          reject(
            // A port in use goes to the gateway as it is: it names the key to change.
            err.code === 'EADDRINUSE'
              ? err
              : new KithError(
                  'ERR_AUTOCONFIG_LISTEN',
                  `cannot listen on ${opts.host}:${opts.port}: ${err.message}`,
                  'choose another http.port (KITH_HTTP_PORT)',
                ),
          ),
        );
        s.listen(opts.port, opts.host, () => resolve((s.address() as AddressInfo).port));
      });
      return { port };
    },
    async stop() {
      const s = server;
      server = null;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}

import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { KithError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import type { Authenticator } from '../auth.ts';
import type { MailStore } from '../mailbox/types.ts';
import type { TlsMaterial } from '../tls.ts';
import { ImapConnection } from './connection.ts';

/** Dependencies and settings of the IMAP server. */
export interface ImapServerOptions {
  /** The mailbox store it serves. */
  store: MailStore;
  /** Credentials (shared with SMTP submission). */
  auth: Authenticator;
  /** Certificate for STARTTLS and implicit TLS. */
  tls: TlsMaterial;
  /** Address to listen on (loopback by default in config). */
  host: string;
  /** Plain port with STARTTLS; 0 = ephemeral. */
  port: number;
  /** Implicit-TLS port; undefined = off, 0 = ephemeral. */
  tlsPort?: number;
  /** Allow LOGIN/AUTHENTICATE without TLS. */
  allowInsecureAuth: boolean;
  /** Largest APPEND accepted (advertised as APPENDLIMIT). */
  appendLimit: number;
  log: Logger;
  /**
   * Where big literals are spooled while they arrive: a node passes its data directory's spool/,
   * so a literal of a user's mail never lands in the OS temp dir. The server owns the literals in
   * it and removes those a crash left, at start. Default: a fresh directory under the OS temp
   * dir, removed at stop.
   */
  tmpDir?: string;
  /** Most simultaneous connections; more are answered `* BYE` and closed (default 256). */
  maxConnections?: number;
}

/** Counters of a running IMAP server. */
export interface ImapServerStats {
  /** Open connections. */
  connections: number;
  /** Connections refused because maxConnections was reached. */
  refused: number;
  /** STARTTLS handshakes completed. */
  starttls: number;
  /** The most unparsed input any connection has held at once (bytes). */
  maxBufferedInput: number;
  /** The most output any connection has had waiting for its client at once (bytes). */
  maxBufferedOutput: number;
}

/** The IMAP server. */
export interface ImapServer {
  /** Starts listening; resolves to the ports actually bound. */
  start(): Promise<{ port: number; tlsPort?: number }>;
  /** Says BYE to every client, waits (bounded) for running commands, closes the listeners. */
  stop(timeoutMs?: number): Promise<void>;
  /** Connection and input-buffer counters. */
  stats(): ImapServerStats;
}

const DEFAULT_MAX_CONNECTIONS = 256;

/** Creates the gateway's IMAP4rev1 server over the mailbox store. */
export function createImapServer(opts: ImapServerOptions): ImapServer {
  const connections = new Set<ImapConnection>();
  const secureContext = createSecureContext({ key: opts.tls.key, cert: opts.tls.cert });
  let plain: Server | null = null;
  let secure: TlsServer | null = null;
  let tmpDir = '';
  let ownTmp = false;
  let refused = 0;
  let starttls = 0;
  let maxBufferedInput = 0;
  let maxBufferedOutput = 0;
  const maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;

  const accept = (socket: import('node:net').Socket, isSecure: boolean): void => {
    if (connections.size >= maxConnections) {
      // Each connection may hold up to ~1 MiB of input and a snapshot: bound how many there are.
      refused++;
      opts.log.warn({ remote: socket.remoteAddress, maxConnections }, 'imap connection refused: too many');
      socket.on('error', () => undefined);
      socket.end('* BYE too many connections\r\n');
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const conn = new ImapConnection(socket, {
      store: opts.store,
      auth: opts.auth,
      log: opts.log,
      options: { allowInsecureAuth: opts.allowInsecureAuth, appendLimit: opts.appendLimit },
      secureContext,
      tmpDir,
      secure: isSecure,
      onStartTls: () => starttls++,
      onClose: (c) => {
        maxBufferedInput = Math.max(maxBufferedInput, c.bufferedHighWater);
        maxBufferedOutput = Math.max(maxBufferedOutput, c.outputHighWater);
        connections.delete(c);
      },
    });
    connections.add(conn);
  };

  const listen = (server: Server | TlsServer, port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new KithError(
            'ERR_IMAP_LISTEN',
            `cannot listen on ${opts.host}:${port}: ${err.message}`,
            'choose another imap port',
          ),
        ),
      );
      server.listen(port, opts.host, () => resolve((server.address() as AddressInfo).port));
    });

  return {
    async start() {
      if (opts.tmpDir) {
        tmpDir = opts.tmpDir;
        removeLeftLiterals(tmpDir);
      } else {
        tmpDir = mkdtempSync(join(tmpdir(), 'kith-imap-'));
        ownTmp = true;
      }
      plain = createServer((s) => accept(s, false));
      const port = await listen(plain, opts.port);
      let tlsPort: number | undefined;
      if (opts.tlsPort !== undefined) {
        secure = createTlsServer({ key: opts.tls.key, cert: opts.tls.cert }, (s) => accept(s, true));
        secure.on('tlsClientError', (err) =>
          opts.log.debug({ err: err.message }, 'imap tls handshake failed'),
        );
        tlsPort = await listen(secure, opts.tlsPort);
      }
      opts.log.info({ port, tlsPort }, 'imap server listening');
      return tlsPort === undefined ? { port } : { port, tlsPort };
    },

    stats() {
      let input = maxBufferedInput;
      let output = maxBufferedOutput;
      for (const c of connections) {
        input = Math.max(input, c.bufferedHighWater);
        output = Math.max(output, c.outputHighWater);
      }
      return {
        connections: connections.size,
        refused,
        starttls,
        maxBufferedInput: input,
        maxBufferedOutput: output,
      };
    },

    async stop(timeoutMs = 5000) {
      const closing = [plain, secure].map(
        (s) => new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve())),
      );
      const deadline = Date.now() + timeoutMs;
      while ([...connections].some((c) => c.busy) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      for (const c of connections) c.close('server shutting down');
      await Promise.race([
        Promise.all(closing),
        new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref()),
      ]);
      plain = null;
      secure = null;
      if (ownTmp) rmSync(tmpDir, { recursive: true, force: true });
    },
  };
}

/** The spool as a fresh start needs it: there, mode 0700, without the literals of a previous run. */
function removeLeftLiterals(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const name of readdirSync(dir)) {
    if (name.startsWith('lit-')) rmSync(join(dir, name), { force: true });
  }
}

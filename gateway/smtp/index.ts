import type { AddressInfo } from 'node:net';
import type { Logger } from '../../common/logger.ts';
import type { BlobStore } from '../../store/blobs.ts';
import type { Authenticator } from '../auth.ts';
import type { DeliveryService } from '../delivery.ts';
import type { SubmissionStore } from '../submissions.ts';
import type { TlsMaterial } from '../tls.ts';
import { createHandlers, type HandlerDeps } from './handlers.ts';
import { KithSmtpServer } from './kith-smtp-server.ts';
import { DEFAULT_HEADER_LIMITS, type HeaderLimits } from './message-check.ts';

export { fingerprintAddress, parseFingerprintAddress } from './addresses.ts';

export interface SubmissionServerOptions {
  /** Checks AUTH PLAIN/LOGIN credentials (and slows down guessing). */
  auth: Authenticator;
  /** Certificate and key for STARTTLS (or implicit TLS when secure). */
  tls: TlsMaterial;
  /** Listen address; loopback by default in the configuration. */
  host: string;
  /** Listen port; 0 picks a free one (start() returns it). */
  port: number;
  /** Implicit TLS from the first byte (port 465 style) instead of STARTTLS. */
  secure: boolean;
  /** Allow AUTH before TLS (only sensible on loopback with clients that cannot do STARTTLS). */
  allowInsecureAuth: boolean;
  /** SIZE limit in bytes. */
  maxMessageBytes: number;
  /** Recipients per message; one more gets 452. */
  maxRecipients: number;
  /** The agent: resolves RCPT TO addresses and takes each recipient's copy. */
  delivery: DeliveryService;
  /** The gateway's record of accepted submissions. */
  submissions: SubmissionStore;
  /** Where message bodies are written before 250. */
  blobs: BlobStore;
  log: Logger;
  /** See HandlerDeps.linkAttachments. */
  linkAttachments?: HandlerDeps['linkAttachments'];
  /** Header section limits (size, number of fields). */
  headerLimits?: HeaderLimits;
  /** Name in the greeting and EHLO reply. */
  name?: string;
  /** Idle time before a silent client is disconnected. */
  socketTimeoutMs?: number;
  /** How long stop() waits for sessions in progress before cutting them. */
  stopTimeoutMs?: number;
}

export interface SubmissionServer {
  /** Starts listening; resolves with the bound port. */
  start(): Promise<{ port: number }>;
  /** Stops accepting, lets sessions in progress finish (up to stopTimeoutMs), then closes them. */
  stop(): Promise<void>;
}

/** The SMTP submission server (RFC 6409) through which mail clients send Kith mail. */
export function createSubmissionServer(options: SubmissionServerOptions): SubmissionServer {
  const handlers = createHandlers({
    auth: options.auth,
    delivery: options.delivery,
    submissions: options.submissions,
    blobs: options.blobs,
    log: options.log,
    maxMessageBytes: options.maxMessageBytes,
    headerLimits: options.headerLimits ?? DEFAULT_HEADER_LIMITS,
    linkAttachments: options.linkAttachments,
  });
  let server: KithSmtpServer | undefined;

  return {
    async start() {
      // Submissions never answered 250 before a crash are not ours to send: the client retries.
      const abandoned = options.submissions.abandonUnanswered();
      if (abandoned > 0) options.log.warn({ abandoned }, 'smtp submissions interrupted before 250');
      const s = new KithSmtpServer({
        secure: options.secure,
        key: options.tls.key,
        cert: options.tls.cert,
        name: options.name ?? 'localhost',
        banner: 'Kith submission',
        size: options.maxMessageBytes,
        maxRecipients: options.maxRecipients,
        authMethods: ['PLAIN', 'LOGIN'],
        allowInsecureAuth: options.allowInsecureAuth,
        hideENHANCEDSTATUSCODES: false,
        hideDSN: false,
        hideREQUIRETLS: true,
        disableReverseLookup: true,
        logger: false,
        socketTimeout: options.socketTimeoutMs ?? 5 * 60_000,
        closeTimeout: options.stopTimeoutMs ?? 10_000,
        authRequiredMessage:
          '5.7.0 authentication required: log in with the credentials `kith mail-settings` shows',
        onAuth: (auth, session, cb) => void handlers.onAuth(auth, session, cb),
        onMailFrom: handlers.onMailFrom,
        onRcptTo: (address, session, cb) => void handlers.onRcptTo(address, session, cb),
        onData: (stream, session, cb) => void handlers.onData(stream, session, cb),
      });
      let listening = false;
      // Until listening, a server error is the listen failure, reported once by the caller.
      s.on('error', (err) => listening && options.log.warn({ err }, 'smtp connection error'));
      await new Promise<void>((resolve, reject) => {
        s.server.once('error', reject);
        s.listen(options.port, options.host, () => {
          s.server.off('error', reject);
          listening = true;
          resolve();
        });
      });
      server = s;
      const port = (s.server.address() as AddressInfo).port;
      options.log.info({ host: options.host, port, secure: options.secure }, 'smtp submission listening');
      return { port };
    },
    async stop() {
      const s = server;
      server = undefined;
      if (!s) return;
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}

import type { Logger } from '../common/logger.ts';
import { KithError } from '../common/errors.ts';
import type { Config } from '../config/schema.ts';
import type { BlobStore } from '../store/blobs.ts';
import type { Db } from '../store/db.ts';
import { Authenticator, type MailAccount } from './auth.ts';
import { createAutoconfigServer } from './autoconfig.ts';
import type { DeliveryService, GatewaySink } from './delivery.ts';
import { createImapServer } from './imap/index.ts';
import { createMailStore, type MailStore } from './mailbox/index.ts';
import { createSubmissionServer } from './smtp/index.ts';
import { createGatewaySink } from './status/index.ts';
import { attachmentLinker } from './streams/split.ts';
import { createSubmissionStore } from './submissions.ts';
import { ensureSelfSignedCertificate, loadTls } from './tls.ts';

/** Where mail clients reach this node's gateway, as `kith mail-settings` and the demo print them. */
export interface GatewaySettings {
  email: string;
  user: string;
  pass: string;
  smtp: { host: string; port: number; tls: 'starttls' | 'tls' };
  imap: { host: string; port: number; tls: 'starttls' };
  autoconfig: string;
}

export interface GatewayOptions {
  config: Readonly<Config>;
  db: Db;
  /** The mailbox's blob files (large message bodies); the mailbox removes a blob when no message uses it. */
  blobs: BlobStore;
  /**
   * Blob files of messages accepted over SMTP, apart from the mailbox's: the agent reads a
   * submission's file until delivery ends, and an identical message expunged from a mailbox
   * must not take it along (the mailbox's cleanup knows only mailbox rows).
   */
  submissionBlobs: BlobStore;
  /** The entity's mail account (SMTP and IMAP share it). */
  account: MailAccount;
  delivery: DeliveryService;
  tlsDir: string;
  /** Where the IMAP server spools literals while they arrive (the data directory's spool/). */
  imapSpoolDir?: string;
  /** Where file-link payloads of large attachments are written (gateway/streams/split.ts); none: never linked. */
  linkedDir?: string;
  log: Logger;
}

/**
 * The gateway beside an agent: the mailbox store, SMTP submission, IMAP, status emails and
 * Thunderbird autoconfig. The one place where these parts are wired together.
 */
export class Gateway {
  store!: MailStore;
  sink!: GatewaySink;
  private readonly stops: (() => Promise<void>)[] = [];

  constructor(private readonly options: GatewayOptions) {}

  async start(): Promise<GatewaySettings> {
    const { config, db, blobs, submissionBlobs, account, log } = this.options;
    const tls =
      config.tls.cert && config.tls.key
        ? loadTls(config.tls.cert, config.tls.key)
        : await ensureSelfSignedCertificate(this.options.tlsDir);
    const auth = new Authenticator([account], log.child({ part: 'auth' }));
    this.store = createMailStore({ db, blobs, log: log.child({ part: 'mailbox' }) });
    await submissionBlobs.init();
    await this.store.start();
    this.stops.push(() => this.store.stop());
    const submissions = createSubmissionStore(db);
    this.sink = createGatewaySink({
      store: this.store,
      submissions,
      blobs: submissionBlobs,
      // submissions accepted before they had their own directory stored their blob here
      fallbackBlobs: blobs,
      composer: {
        from: `Kith <postmaster@${account.user.split('@')[1] ?? 'kith'}>`,
        reportingMta: 'kith',
        maxAgeMs: config.delivery.maxAgeMs,
        maxReturnBytes: 10 * 1024 * 1024,
        alwaysReportDelivery: config.delivery.alwaysReportDelivery,
      },
      log: log.child({ part: 'status' }),
    });
    const smtp = createSubmissionServer({
      auth,
      tls,
      host: config.smtp.host,
      port: config.smtp.port,
      secure: config.smtp.secure,
      allowInsecureAuth: config.smtp.allowInsecureAuth,
      maxMessageBytes: config.smtp.maxMessageBytes,
      maxRecipients: config.smtp.maxRecipients,
      delivery: this.options.delivery,
      submissions,
      blobs: submissionBlobs,
      log: log.child({ part: 'smtp' }),
      linkAttachments:
        this.options.linkedDir === undefined
          ? undefined
          : attachmentLinker({
              above: config.streams.linkAttachmentsAbove,
              dir: this.options.linkedDir,
              log: log.child({ part: 'streams' }),
            }),
    });
    const smtpPort = (await listening('smtp', config.smtp.host, config.smtp.port, () => smtp.start())).port;
    this.stops.push(() => smtp.stop());
    const imap = createImapServer({
      store: this.store,
      auth,
      tls,
      host: config.imap.host,
      port: config.imap.port,
      tlsPort: config.imap.tlsPort > 0 ? config.imap.tlsPort : undefined,
      allowInsecureAuth: config.imap.allowInsecureAuth,
      appendLimit: config.imap.appendLimit,
      maxConnections: config.imap.maxConnections,
      tmpDir: this.options.imapSpoolDir,
      log: log.child({ part: 'imap' }),
    });
    const imapPort = (await listening('imap', config.imap.host, config.imap.port, () => imap.start())).port;
    this.stops.push(() => imap.stop());
    // What clients are told (and what the autoconfig XML says): never a wildcard address.
    const settings = {
      email: account.user,
      imap: { host: config.publicHost ?? clientHost(config.imap.host), port: imapPort },
      smtp: { host: config.publicHost ?? clientHost(config.smtp.host), port: smtpPort },
    };
    const autoconfig = createAutoconfigServer({
      ...settings,
      host: config.http.host,
      port: config.http.port,
    });
    const httpPort = (await listening('http', config.http.host, config.http.port, () => autoconfig.start()))
      .port;
    this.stops.push(() => autoconfig.stop());
    return {
      email: account.user,
      user: account.user,
      pass: account.password,
      smtp: { ...settings.smtp, tls: config.smtp.secure ? 'tls' : 'starttls' },
      imap: { ...settings.imap, tls: 'starttls' },
      autoconfig: `http://${urlHost(config.publicHost ?? clientHost(config.http.host))}:${httpPort}/.well-known/autoconfig/mail/config-v1.1.xml`,
    };
  }

  /** Stops servers first (clients get BYE / 421), then the store. */
  async stop(): Promise<void> {
    while (this.stops.length > 0) await this.stops.pop()!();
  }
}

/**
 * The host a mail client should connect to for a server bound to `bound`. A wildcard
 * (0.0.0.0, ::, e.g. in the Docker image) accepts connections but cannot be connected to; the
 * loopback address can, and is what the image's published ports and the self-signed
 * certificate (localhost, 127.0.0.1) are for. Any other address is given as it is.
 */
export function clientHost(bound: string): string {
  if (bound === '0.0.0.0' || bound === '') return '127.0.0.1';
  if (bound === '::' || bound === '[::]') return 'localhost';
  return bound;
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Turns "address in use" into one line that says which key to change. */
async function listening<T>(what: string, host: string, port: number, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new KithError(
        'ERR_PORT_IN_USE',
        `${what} port ${port} on ${host} is already in use`,
        `stop what uses it, or set ${what}.port (KITH_${what.toUpperCase()}_PORT) to another port`,
      );
    }
    throw err;
  }
}

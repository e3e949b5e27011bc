import { ImapFlow } from 'imapflow';
import type { Logger } from '../../../common/logger.ts';
import type { BridgeSettings } from './store.ts';

/** What the reader needs of the bridge: where it stopped, and what to do with each new message. */
export interface ReaderDeps {
  imap: BridgeSettings['imap'];
  log: Logger;
  /** The last UID handled under that UIDVALIDITY (0: none). */
  cursor(uidvalidity: string): number;
  setCursor(uidvalidity: string, uid: number): void;
  /** Takes one message; when it resolves the message counts as handled (the cursor moves past it). */
  handle(raw: Buffer, uid: number): Promise<void>;
  /** A message whose handling failed maxFailures times (default 3) is given up and passed. */
  gaveUp(uid: number, err: Error): void;
  maxFailures?: number;
}

/**
 * Reads the mailbox subscribed to the outside list with imapflow and IMAP IDLE: at connect every
 * message past the cursor, then each one the server announces (EXISTS). Messages are handled one at
 * a time in UID order and the cursor (in SQLite) moves past each once handled, so a restart reads
 * on where it stopped and nothing is read twice by design (the Message-ID memory catches the rest).
 * A lost connection is reconnected with a backoff of 1 s doubling to 60 s.
 */
export class MailboxReader {
  private client?: ImapFlow;
  private stopped = true;
  private reading?: Promise<void>;
  private again = false;
  private retry?: NodeJS.Timeout;
  private backoffMs = 1000;
  private readonly failures = new Map<number, number>();
  private connectedOnce?: () => void;
  /** Resolves once the reader has connected and read what was there (tests, `bridge add`). */
  readonly ready: Promise<void>;

  constructor(private readonly deps: ReaderDeps) {
    this.ready = new Promise((r) => (this.connectedOnce = r));
  }

  start(): void {
    this.stopped = false;
    void this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.reading?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    if (client) await client.logout().catch(() => client.close());
  }

  private async connect(): Promise<void> {
    const { imap, log } = this.deps;
    const client = new ImapFlow({
      host: imap.host,
      port: imap.port,
      secure: imap.tls === 'tls',
      doSTARTTLS: imap.tls === 'starttls' ? true : imap.tls === 'none' ? false : undefined,
      auth: { user: imap.user, pass: imap.pass },
      logger: false,
      // The reader only listens: IDLE at once after each command (imapflow waits 15 s by default,
      // and until IDLE starts the server tells nothing of new mail).
      autoIdleDelay: 200,
    });
    client.on('error', (err: Error) => log.warn({ err: err.message }, 'bridge: IMAP error'));
    client.on('close', () => {
      if (this.client !== client) return;
      this.client = undefined;
      this.reconnect('the IMAP connection closed');
    });
    client.on('exists', () => this.read());
    try {
      await client.connect();
      await client.mailboxOpen(imap.mailbox);
    } catch (err) {
      client.close();
      this.reconnect((err as Error).message);
      return;
    }
    if (this.stopped) {
      await client.logout().catch(() => client.close());
      return;
    }
    this.client = client;
    this.backoffMs = 1000;
    log.info({ mailbox: imap.mailbox, host: imap.host }, 'bridge: reading the outside list mailbox');
    this.read();
    await this.reading;
    this.connectedOnce?.();
  }

  private reconnect(why: string): void {
    if (this.stopped) return;
    this.deps.log.warn({ why, retryMs: this.backoffMs }, 'bridge: IMAP reconnect');
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.connect(), this.backoffMs);
    this.retry.unref();
    this.backoffMs = Math.min(60_000, this.backoffMs * 2);
  }

  /** Reads what is new; a call while reading makes the running read go round once more. */
  private read(): void {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        await this.readNew().catch((err: Error) =>
          this.deps.log.warn({ err: err.message }, 'bridge: reading the mailbox failed'),
        );
      } while (this.again && !this.stopped);
    })().finally(() => (this.reading = undefined));
  }

  private async readNew(): Promise<void> {
    const client = this.client;
    if (!client || this.stopped || typeof client.mailbox !== 'object') return;
    const validity = String(client.mailbox.uidValidity);
    const from = this.deps.cursor(validity) + 1;
    const found: { uid: number; source: Buffer }[] = [];
    for await (const m of client.fetch({ uid: `${from}:*` }, { uid: true, source: true }, { uid: true })) {
      if (m.uid >= from && m.source) found.push({ uid: m.uid, source: m.source });
    }
    found.sort((a, b) => a.uid - b.uid);
    for (const m of found) {
      if (this.stopped) return;
      try {
        await this.deps.handle(m.source, m.uid);
      } catch (err) {
        const n = (this.failures.get(m.uid) ?? 0) + 1;
        this.failures.set(m.uid, n);
        this.deps.log.warn(
          { uid: m.uid, failures: n, err: (err as Error).message },
          'bridge: a message failed',
        );
        if (n < (this.deps.maxFailures ?? 3)) return; // tried again at the next EXISTS or reconnect
        this.deps.gaveUp(m.uid, err as Error);
      }
      this.failures.delete(m.uid);
      this.deps.setCursor(validity, m.uid);
    }
  }
}

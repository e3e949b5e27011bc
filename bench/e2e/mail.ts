// The mail-client side of the end-to-end benchmarks: an SMTP submitter on one reused connection
// and an IMAP watcher that polls the INBOX at a fixed interval. Both are used the same way
// against Kith and against Postfix + Dovecot.
import { ImapFlow } from 'imapflow';
import nodemailer, { type Transporter } from 'nodemailer';
import { sleep } from '../lib/stats.ts';

export interface Account {
  host: string;
  port: number;
  user?: string;
  pass?: string;
}

/** How often the watcher asks the server (NOOP) whether new mail is there. */
export const POLL_MS = 5;

export class Submitter {
  private readonly transport: Transporter;
  constructor(
    account: Account,
    private readonly from: string,
    private readonly to: string,
  ) {
    this.transport = nodemailer.createTransport({
      host: account.host,
      port: account.port,
      secure: false,
      ignoreTLS: true,
      pool: true,
      maxConnections: 1,
      maxMessages: Infinity,
      auth: account.user ? { user: account.user, pass: account.pass! } : undefined,
    });
  }

  /** Resolves when the server answered 250 to the message's DATA. */
  async send(n: number): Promise<void> {
    await this.transport.sendMail({
      from: this.from,
      to: this.to,
      subject: `bench message ${n}`,
      messageId: `<bench-${n}-${Date.now()}@bench>`,
      text: 'x'.repeat(800),
    });
  }

  close(): void {
    this.transport.close();
  }
}

export class Watcher {
  private exists = 0;
  private running = true;
  private loop?: Promise<void>;
  private readonly seen: number[] = [];

  private constructor(private readonly client: ImapFlow) {}

  static async open(account: Account): Promise<Watcher> {
    const client = new ImapFlow({
      host: account.host,
      port: account.port,
      secure: false,
      doSTARTTLS: false,
      auth: { user: account.user!, pass: account.pass! },
      logger: false,
    });
    await client.connect();
    const box = await client.mailboxOpen('INBOX');
    const w = new Watcher(client);
    w.exists = box.exists;
    w.loop = w.poll();
    return w;
  }

  /** Number of messages in the INBOX at the last poll. */
  get count(): number {
    return this.exists;
  }

  private async poll(): Promise<void> {
    while (this.running) {
      await this.client.noop();
      const now = performance.now();
      const exists = this.client.mailbox ? this.client.mailbox.exists : this.exists;
      while (this.seen.length < exists) this.seen.push(now);
      this.exists = exists;
      await sleep(POLL_MS);
    }
  }

  /** Resolves with the time (performance.now()) at which the INBOX first held `n` messages. */
  async until(n: number, timeoutMs = 60_000): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (this.seen.length < n) {
      if (performance.now() > deadline) throw new Error(`INBOX stayed at ${this.seen.length} of ${n}`);
      await sleep(1);
    }
    return this.seen[n - 1]!;
  }

  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.client.logout();
  }
}

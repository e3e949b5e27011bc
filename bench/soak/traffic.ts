// The soak's mail clients: a sender that submits over SMTP (STARTTLS + AUTH, as a mail client
// does) and a reader that empties an INBOX over IMAP (STARTTLS), checking every message it finds
// against what was accepted.
import { createHash, randomBytes } from 'node:crypto';
import { ImapFlow } from 'imapflow';
import { simpleParser } from 'mailparser';
import nodemailer, { type Transporter } from 'nodemailer';

export interface Account {
  host: string;
  port: number;
  user: string;
  pass: string;
}

/** A message's attachment: random bytes and their SHA-256, which the reader checks. */
export function payload(bytes: number): { content: Buffer; sum: string } {
  const content = randomBytes(bytes);
  return { content, sum: createHash('sha256').update(content).digest('hex') };
}

/**
 * The size of the n-th message: mostly small mails, some larger ones (why: most mail is small,
 * but chunked payloads and bigger blobs take other code paths that must not leak either).
 */
export function sizeFor(random: () => number, maxKiB: number): number {
  const r = random();
  if (r < 0.75) return 512 + Math.floor(random() * 3584);
  if (r < 0.95) return 16_384 + Math.floor(random() * 49_152);
  return 131_072 + Math.floor(random() * Math.max(1, maxKiB * 1024 - 131_072));
}

export class Sender {
  private readonly transport: Transporter;
  constructor(
    account: Account,
    readonly from: string,
  ) {
    this.transport = nodemailer.createTransport({
      host: account.host,
      port: account.port,
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      pool: true,
      maxConnections: 1,
      maxMessages: Infinity,
      auth: { user: account.user, pass: account.pass },
    });
  }

  /** Submits one message with `content` attached; resolves on the 250. */
  async send(id: string, to: string, content: Buffer): Promise<void> {
    await this.transport.sendMail({
      from: this.from,
      to,
      subject: `soak ${id}`,
      headers: { 'X-Soak-Id': id },
      text: `soak message ${id}, ${content.length} bytes attached\n`,
      attachments: [{ filename: 'data.bin', content, contentType: 'application/octet-stream' }],
    });
  }

  close(): void {
    this.transport.close();
  }
}

export interface Found {
  /** Soak messages found: id, whether the attachment matched, when it was seen. */
  onMessage(id: string, intact: boolean): void;
  /** Status emails: Delivered/Delayed/Undelivered. */
  onStatus(kind: string): void;
  /** Anything else. */
  onOther(subject: string): void;
}

/**
 * Empties an INBOX: fetches every message newer than the last seen, checks it, deletes it
 * (why delete: a mailbox that grows for two hours makes the server hold more state, which
 * would read as a leak; a client that reads and deletes is steady state).
 */
export class Reader {
  private client?: ImapFlow;
  private lastUid = 0;
  reconnects = 0;

  constructor(
    private readonly account: Account,
    private readonly sums: (id: string) => string | undefined,
    private readonly found: Found,
  ) {}

  private async connect(): Promise<ImapFlow> {
    const client = new ImapFlow({
      host: this.account.host,
      port: this.account.port,
      secure: false,
      tls: { rejectUnauthorized: false },
      auth: { user: this.account.user, pass: this.account.pass },
      logger: false,
    });
    client.on('error', () => undefined);
    await client.connect();
    await client.mailboxOpen('INBOX');
    this.lastUid = 0;
    return client;
  }

  /** One pass over the INBOX. */
  async poll(): Promise<void> {
    try {
      this.client ??= await this.connect();
      const client = this.client;
      await client.noop();
      if (!client.mailbox || client.mailbox.exists === 0) return;
      const done: number[] = [];
      for await (const msg of client.fetch(
        `${this.lastUid + 1}:*`,
        { uid: true, source: true },
        { uid: true },
      )) {
        if (msg.uid <= this.lastUid || !msg.source) continue;
        done.push(msg.uid);
        await this.check(msg.source);
      }
      if (done.length === 0) return;
      this.lastUid = Math.max(this.lastUid, ...done);
      await client.messageDelete(done, { uid: true });
    } catch (err) {
      // A dropped connection is counted and opened again; what it had not deleted is read again
      // (and recognised as already seen, so it counts once).
      this.reconnects++;
      process.stderr.write(`imap ${this.account.user}: ${(err as Error).message}; reconnecting\n`);
      await this.client?.logout().catch(() => undefined);
      this.client = undefined;
    }
  }

  private async check(source: Buffer): Promise<void> {
    const mail = await simpleParser(source);
    const id = mail.headers.get('x-soak-id');
    if (typeof id === 'string') {
      const attached = mail.attachments.find((a) => a.filename === 'data.bin');
      const sum = attached ? createHash('sha256').update(attached.content).digest('hex') : '';
      this.found.onMessage(id, sum === this.sums(id));
      return;
    }
    const subject = mail.subject ?? '';
    const kind = /^(Delivered|Delayed|Undelivered):/.exec(subject)?.[1];
    if (kind) this.found.onStatus(kind);
    else this.found.onOther(subject);
  }

  async close(): Promise<void> {
    await this.client?.logout().catch(() => undefined);
  }
}

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import nodemailer, { type Transporter } from 'nodemailer';
import addressparser from 'nodemailer/lib/addressparser';
import { asMessageId, type MessageId } from '../../../common/ids.ts';
import type { Logger } from '../../../common/logger.ts';
import { headerValues } from '../headers.ts';
import type { ListSettings } from '../store.ts';
import { decideInbound, outboundRetryAt } from './decide.ts';
import { outsideCopy } from './outgoing.ts';
import { MailboxReader } from './reader.ts';
import type { BridgeSettings, BridgeStore } from './store.ts';

/** What the bridge needs of its list: to bring an outside post in, and the list's settings. */
export interface BridgedList {
  settings(): ListSettings;
  /** Distributes a post from the outside list to every member, signed by the list. Idempotent per id. */
  bringIn(id: MessageId, raw: Buffer): Promise<void>;
}

/**
 * An Internet mailing list bridged into the network as a list entity (docs/protocol.md 17.6). In:
 * the mailbox subscribed to the outside list is read over IMAP IDLE (reader.ts); each post that
 * decideInbound lets in is distributed by the list like a post of its own, the original From: kept
 * in X-Original-From. Out: each post a member makes to the list is queued (SQLite) and sent to the
 * outside list through the configured SMTP relay (nodemailer) from the subscribed address, tried
 * again with a backoff. Loops are broken by X-Loop and by the durable Message-ID memory.
 */
export class ListBridge {
  private readonly reader: MailboxReader;
  private timer?: NodeJS.Timeout;
  private sending?: Promise<void>;
  private resend = false;
  private readonly transport: Transporter;

  constructor(
    private readonly deps: {
      settings: BridgeSettings;
      store: BridgeStore;
      list: BridgedList;
      log: Logger;
      clock?: () => number;
    },
  ) {
    const { smtp } = deps.settings;
    this.transport = nodemailer.createTransport({
      host: smtp.host,
      port: smtp.port,
      secure: smtp.tls === 'tls',
      requireTLS: smtp.tls === 'starttls',
      ignoreTLS: smtp.tls === 'none',
      auth: smtp.user ? { user: smtp.user, pass: smtp.pass ?? '' } : undefined,
    });
    this.reader = new MailboxReader({
      imap: deps.settings.imap,
      log: deps.log,
      cursor: (v) => deps.store.cursor(v),
      setCursor: (v, uid) => deps.store.setCursor(v, uid),
      handle: (raw) => this.inbound(raw),
      gaveUp: (uid, err) => {
        deps.store.drop(undefined, `error: ${err.message}`);
        deps.log.warn({ uid, err: err.message }, 'bridge: a message from the outside list given up');
      },
    });
  }

  private get now(): number {
    return (this.deps.clock ?? Date.now)();
  }

  /** Resolves once the mailbox has been read once (what was there before the bridge started). */
  get ready(): Promise<void> {
    return this.reader.ready;
  }

  start(): void {
    this.reader.start();
    this.timer = setInterval(() => this.kick(), 5000);
    this.timer.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.reader.stop();
    await this.sending?.catch(() => undefined);
    this.transport.close();
  }

  /** Tries every waiting post now (`kith bridge retry`, e.g. once the relay is back); how many. */
  retryNow(): number {
    const n = this.deps.store.retryNow(this.now);
    this.kick();
    return n;
  }

  /**
   * A member's post the list distributed: queued for the outside list. Synchronous (one SQLite
   * transaction) so that the list calls it right after recording the post.
   */
  enqueue(post: MessageId, copy: Buffer, rawPath: string, posterName: string): void {
    const messageId = headerValues(copy, 'Message-ID')[0]?.trim() || `<${post}@kith>`;
    this.deps.store.enqueue(post, messageId, rawPath, posterName);
    this.kick();
  }

  /** One message from the outside list's mailbox: into the network, or dropped with its reason. */
  private async inbound(raw: Buffer): Promise<void> {
    const { store, list, settings, log } = this.deps;
    const messageId = headerValues(raw, 'Message-ID')[0]?.trim() || `<sha256.${sha256(raw)}>`;
    const addresses = (name: string) =>
      headerValues(raw, name)
        .flatMap((v) => addressparser(v, { flatten: true }))
        .map((a) => (a.address ?? '').toLowerCase())
        .filter(Boolean);
    const decision = decideInbound({
      bridgeAddress: settings.address,
      listAddress: settings.listAddress,
      from: addresses('From'),
      recipients: [...addresses('To'), ...addresses('Cc')],
      xLoop: headerValues(raw, 'X-Loop'),
      listFields: [...headerValues(raw, 'List-Id'), ...headerValues(raw, 'List-Post')],
      seen: store.seen(messageId),
      size: raw.length,
      maxBytes: list.settings().maxBytes,
    });
    if (decision.action === 'drop') {
      store.drop(messageId, decision.reason);
      log.info({ messageId, reason: decision.reason }, 'bridge: a message from the outside list dropped');
      return;
    }
    // The post's id follows from its Message-ID: a crash before remember() brings it in again
    // under the same id, which the list ignores (bringIn is idempotent per id).
    const id = asMessageId(sha256(Buffer.from(messageId)).slice(0, 32));
    await list.bringIn(id, raw);
    store.remember(messageId, 'in');
    log.info({ messageId, post: id }, 'bridge: a post from the outside list brought in');
  }

  /** Sends what is due; a call while sending makes it go round once more. */
  private kick(): void {
    if (this.sending) {
      this.resend = true;
      return;
    }
    this.sending = (async () => {
      do {
        this.resend = false;
        for (const out of this.deps.store.due(this.now)) await this.send(out);
      } while (this.resend);
    })()
      .catch((err: Error) => this.deps.log.warn({ err: err.message }, 'bridge: sending failed'))
      .finally(() => (this.sending = undefined));
  }

  private async send(out: ReturnType<BridgeStore['due']>[number]): Promise<void> {
    const { store, settings, log } = this.deps;
    const listSettings = this.deps.list.settings();
    try {
      const { raw } = outsideCopy(
        await readFile(out.rawPath),
        {
          name: listSettings.name,
          email: listSettings.email,
          listAddress: settings.listAddress,
          address: settings.address,
        },
        out.posterName,
        out.post,
      );
      await this.transport.sendMail({
        envelope: { from: settings.address, to: [settings.listAddress] },
        raw,
      });
      store.markSent(out.post);
      log.info({ post: out.post, messageId: out.messageId }, 'bridge: a post sent to the outside list');
    } catch (err) {
      const e = err as Error & { responseCode?: number };
      const next = outboundRetryAt(out.attempts, e.responseCode, this.now);
      store.markAttempt(out.post, e.message, next);
      // The post is kept either way (bridge_outbound, posts/<id>.eml): `kith bridge show` lists it.
      log.warn(
        {
          post: out.post,
          messageId: out.messageId,
          relay: `${settings.smtp.host}:${settings.smtp.port}`,
          attempt: out.attempts + 1,
          err: e.message,
          retryAt: next === undefined ? undefined : new Date(next).toISOString(),
        },
        next === undefined
          ? 'bridge: the outside relay refused a post for good; kept as failed (kith bridge show)'
          : 'bridge: the outside relay did not take a post; kept, tried again at retryAt (or kith bridge retry)',
      );
    }
  }
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

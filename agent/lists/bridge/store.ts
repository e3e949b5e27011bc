import { KithError } from '../../../common/errors.ts';
import type { MessageId } from '../../../common/ids.ts';
import { migrate, type Db } from '../../../store/db.ts';
import type { SecretBox } from '../../identity/secretbox.ts';

/**
 * A bridge's state, in its list's own kith.db (migration module "bridge", docs/protocol.md 17.6):
 * how to reach the outside list (IMAP mailbox subscribed to it, SMTP relay), where the IMAP reader
 * stopped, every Message-ID that crossed the bridge (the loop memory, durable across restarts),
 * the posts waiting to go out, and the messages dropped with their reason.
 */
const MIGRATIONS = [
  `CREATE TABLE bridge_settings (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     list_address TEXT NOT NULL, address TEXT NOT NULL,
     imap_host TEXT NOT NULL, imap_port INTEGER NOT NULL, imap_tls TEXT NOT NULL,
     imap_user TEXT NOT NULL, imap_pass TEXT NOT NULL, mailbox TEXT NOT NULL,
     smtp_host TEXT NOT NULL, smtp_port INTEGER NOT NULL, smtp_tls TEXT NOT NULL,
     smtp_user TEXT, smtp_pass TEXT);
   CREATE TABLE bridge_cursor (
     id INTEGER PRIMARY KEY CHECK (id = 1), uidvalidity TEXT NOT NULL, last_uid INTEGER NOT NULL);
   CREATE TABLE bridge_seen (
     message_id TEXT PRIMARY KEY, direction TEXT NOT NULL, at INTEGER NOT NULL);
   CREATE TABLE bridge_outbound (
     post TEXT PRIMARY KEY, message_id TEXT NOT NULL, raw_path TEXT NOT NULL, state TEXT NOT NULL,
     attempts INTEGER NOT NULL, next_at INTEGER NOT NULL, error TEXT, sent_at INTEGER,
     poster_name TEXT NOT NULL);
   CREATE TABLE bridge_drops (
     message_id TEXT, reason TEXT NOT NULL, at INTEGER NOT NULL);`,
];

const IMAP_LABEL = 'bridge-imap-pass';
const SMTP_LABEL = 'bridge-smtp-pass';

/** How a connection is secured: implicit TLS, STARTTLS, or plain (loopback tests only). */
export type TlsMode = 'tls' | 'starttls' | 'none';

export interface BridgeSettings {
  /** The outside list's posting address (dev@lists.example.org). */
  listAddress: string;
  /** The address subscribed to the outside list: its mail lands in the IMAP mailbox, posts go out from it. */
  address: string;
  imap: { host: string; port: number; tls: TlsMode; user: string; pass: string; mailbox: string };
  smtp: { host: string; port: number; tls: TlsMode; user?: string; pass?: string };
}

export type Direction = 'in' | 'out';

export interface Outbound {
  post: MessageId;
  messageId: string;
  /** The network copy of the post (posts/<id>.eml); the outside copy is made from it when sent. */
  rawPath: string;
  posterName: string;
  state: 'pending' | 'sent' | 'failed';
  attempts: number;
  nextAt: number;
  error?: string;
}

export interface Drop {
  messageId?: string;
  reason: string;
  at: number;
}

/** How a sealed password starts in its TEXT column (a plain one from before sealing does not). */
const SEALED = 'sealed:';

export class BridgeStore {
  /**
   * `box` seals the IMAP and SMTP passwords at rest (AES-256-GCM under the key derived from the
   * node passphrase, agent/identity secretBoxOf), as the node keeps its agent keys: a copy of the
   * list's kith.db alone does not give the outside mailbox away. Without a box (tests) passwords
   * are kept as given. A plain password found with a box (written before sealing) is sealed at once.
   */
  constructor(
    private readonly db: Db,
    private readonly clock: () => number = Date.now,
    private readonly box?: SecretBox,
  ) {
    migrate(db, 'bridge', MIGRATIONS);
    this.sealPlain();
  }

  private seal(pass: string | undefined, label: string): string | null {
    if (pass === undefined) return null;
    return this.box ? SEALED + this.box.seal(Buffer.from(pass), label).toString('base64') : pass;
  }

  private open(stored: string | null, label: string): string | undefined {
    if (stored === null) return undefined;
    if (!stored.startsWith(SEALED)) return stored;
    if (!this.box) {
      throw new KithError(
        'ERR_BRIDGE_SEALED',
        'the bridge passwords are sealed under the node passphrase',
        'start the node with its passphrase',
      );
    }
    return this.box.open(Buffer.from(stored.slice(SEALED.length), 'base64'), label).toString();
  }

  private sealPlain(): void {
    if (!this.box) return;
    const r = this.db.prepare('SELECT imap_pass, smtp_pass FROM bridge_settings WHERE id = 1').get() as
      { imap_pass: string; smtp_pass: string | null } | undefined;
    if (!r) return;
    const plain = (v: string | null) => v !== null && !v.startsWith(SEALED);
    if (plain(r.imap_pass) || plain(r.smtp_pass)) this.saveSettings(this.settings()!);
  }

  /** True when the list bridges an outside list (without opening its passwords). */
  hasSettings(): boolean {
    return this.db.prepare('SELECT 1 FROM bridge_settings WHERE id = 1').get() !== undefined;
  }

  /**
   * `kith bridge remove`: the settings and their sealed passwords go; posts still waiting to go
   * out are marked failed with the reason. The loop memory, cursor and drops stay (a bridge added
   * again to the same mailbox does not bring old posts in twice).
   */
  removeSettings(reason: string): number {
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM bridge_settings WHERE id = 1').run();
      return this.db
        .prepare(`UPDATE bridge_outbound SET state = 'failed', error = ? WHERE state = 'pending'`)
        .run(reason).changes;
    })();
  }

  /** Posts waiting to go out (the relay did not take them yet), for `kith bridge show`. */
  waiting(): Outbound[] {
    return (
      this.db
        .prepare(`SELECT * FROM bridge_outbound WHERE state = 'pending' ORDER BY next_at`)
        .all() as Record<string, unknown>[]
    ).map(toOutbound);
  }

  /** `kith bridge retry`: every waiting post is due now. */
  retryNow(now = this.clock()): number {
    return this.db.prepare(`UPDATE bridge_outbound SET next_at = ? WHERE state = 'pending'`).run(now).changes;
  }

  settings(): BridgeSettings | undefined {
    const r = this.db.prepare('SELECT * FROM bridge_settings WHERE id = 1').get() as
      Record<string, unknown> | undefined;
    if (!r) return undefined;
    return {
      listAddress: r.list_address as string,
      address: r.address as string,
      imap: {
        host: r.imap_host as string,
        port: r.imap_port as number,
        tls: r.imap_tls as TlsMode,
        user: r.imap_user as string,
        pass: this.open(r.imap_pass as string, IMAP_LABEL)!,
        mailbox: r.mailbox as string,
      },
      smtp: {
        host: r.smtp_host as string,
        port: r.smtp_port as number,
        tls: r.smtp_tls as TlsMode,
        user: (r.smtp_user as string | null) ?? undefined,
        pass: this.open((r.smtp_pass as string | null) ?? null, SMTP_LABEL),
      },
    };
  }

  saveSettings(s: BridgeSettings): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO bridge_settings (id, list_address, address, imap_host, imap_port, imap_tls,
           imap_user, imap_pass, mailbox, smtp_host, smtp_port, smtp_tls, smtp_user, smtp_pass)
         VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        s.listAddress,
        s.address,
        s.imap.host,
        s.imap.port,
        s.imap.tls,
        s.imap.user,
        this.seal(s.imap.pass, IMAP_LABEL),
        s.imap.mailbox,
        s.smtp.host,
        s.smtp.port,
        s.smtp.tls,
        s.smtp.user ?? null,
        this.seal(s.smtp.pass, SMTP_LABEL),
      );
  }

  /** Where the reader stopped in the mailbox; a new UIDVALIDITY starts from the beginning. */
  cursor(uidvalidity: string): number {
    const r = this.db.prepare('SELECT * FROM bridge_cursor WHERE id = 1').get() as
      { uidvalidity: string; last_uid: number } | undefined;
    return r && r.uidvalidity === uidvalidity ? r.last_uid : 0;
  }

  setCursor(uidvalidity: string, lastUid: number): void {
    this.db
      .prepare('INSERT OR REPLACE INTO bridge_cursor (id, uidvalidity, last_uid) VALUES (1, ?, ?)')
      .run(uidvalidity, lastUid);
  }

  /** Which way a Message-ID crossed the bridge, if it did. */
  seen(messageId: string): Direction | undefined {
    const r = this.db.prepare('SELECT direction FROM bridge_seen WHERE message_id = ?').get(messageId) as
      { direction: Direction } | undefined;
    return r?.direction;
  }

  /** Remembers a Message-ID; the first crossing's direction stays. */
  remember(messageId: string, direction: Direction): void {
    this.db
      .prepare('INSERT OR IGNORE INTO bridge_seen (message_id, direction, at) VALUES (?, ?, ?)')
      .run(messageId, direction, this.clock());
  }

  /** Queues a member's post for the outside list and remembers its Message-ID, in one transaction. */
  enqueue(post: MessageId, messageId: string, rawPath: string, posterName: string): void {
    this.db.transaction(() => {
      this.remember(messageId, 'out');
      this.db
        .prepare(
          `INSERT OR IGNORE INTO bridge_outbound (post, message_id, raw_path, poster_name, state, attempts, next_at)
           VALUES (?, ?, ?, ?, 'pending', 0, ?)`,
        )
        .run(post, messageId, rawPath, posterName, this.clock());
    })();
  }

  /** Posts due to go out now. */
  due(now = this.clock()): Outbound[] {
    return (
      this.db
        .prepare(`SELECT * FROM bridge_outbound WHERE state = 'pending' AND next_at <= ? ORDER BY next_at`)
        .all(now) as Record<string, unknown>[]
    ).map(toOutbound);
  }

  outbound(post: MessageId): Outbound | undefined {
    const r = this.db.prepare('SELECT * FROM bridge_outbound WHERE post = ?').get(post) as
      Record<string, unknown> | undefined;
    return r ? toOutbound(r) : undefined;
  }

  markSent(post: MessageId): void {
    this.db
      .prepare(`UPDATE bridge_outbound SET state = 'sent', sent_at = ?, error = NULL WHERE post = ?`)
      .run(this.clock(), post);
  }

  /** A failed attempt: tried again at nextAt, or given up ('failed') when nextAt is undefined. */
  markAttempt(post: MessageId, error: string, nextAt: number | undefined): void {
    this.db
      .prepare(
        `UPDATE bridge_outbound SET attempts = attempts + 1, error = ?, state = ?, next_at = ? WHERE post = ?`,
      )
      .run(error, nextAt === undefined ? 'failed' : 'pending', nextAt ?? 0, post);
  }

  drop(messageId: string | undefined, reason: string): void {
    this.db
      .prepare('INSERT INTO bridge_drops (message_id, reason, at) VALUES (?, ?, ?)')
      .run(messageId ?? null, reason, this.clock());
  }

  /** The newest drops first. */
  drops(limit = 50): Drop[] {
    return (
      this.db.prepare('SELECT * FROM bridge_drops ORDER BY rowid DESC LIMIT ?').all(limit) as Record<
        string,
        unknown
      >[]
    ).map((r) => ({
      messageId: (r.message_id as string | null) ?? undefined,
      reason: r.reason as string,
      at: r.at as number,
    }));
  }

  /** Counts for `kith bridge show`. */
  counts(): { in: number; out: number; pending: number; failed: number; dropped: number } {
    const one = (sql: string) => (this.db.prepare(sql).get() as { n: number }).n;
    return {
      in: one(`SELECT COUNT(*) AS n FROM bridge_seen WHERE direction = 'in'`),
      out: one(`SELECT COUNT(*) AS n FROM bridge_outbound WHERE state = 'sent'`),
      pending: one(`SELECT COUNT(*) AS n FROM bridge_outbound WHERE state = 'pending'`),
      failed: one(`SELECT COUNT(*) AS n FROM bridge_outbound WHERE state = 'failed'`),
      dropped: one('SELECT COUNT(*) AS n FROM bridge_drops'),
    };
  }
}

function toOutbound(r: Record<string, unknown>): Outbound {
  return {
    post: r.post as MessageId,
    messageId: r.message_id as string,
    rawPath: r.raw_path as string,
    posterName: r.poster_name as string,
    state: r.state as Outbound['state'],
    attempts: r.attempts as number,
    nextAt: r.next_at as number,
    error: (r.error as string | null) ?? undefined,
  };
}

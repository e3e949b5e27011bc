import type { Fingerprint, MessageId } from '../../common/ids.ts';
import { migrate, type Db } from '../../store/db.ts';
import type { CopyState, PostingPolicy } from './policy.ts';

/**
 * A list's own state in its own data directory's kith.db: settings, members and moderators,
 * every post with the decision taken on it, and one row per subscriber copy (what the poster's
 * summary and `kith list track` are made of). Migration module "lists" (docs/protocol.md 14, 17).
 */
const MIGRATIONS = [
  `CREATE TABLE list_settings (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     name TEXT NOT NULL, email TEXT NOT NULL, policy TEXT NOT NULL, chat INTEGER NOT NULL,
     max_bytes INTEGER NOT NULL, archive TEXT, summary_after_ms INTEGER NOT NULL);
   CREATE TABLE list_members (
     fingerprint TEXT PRIMARY KEY, email TEXT NOT NULL, name TEXT NOT NULL,
     moderator INTEGER NOT NULL, added_at INTEGER NOT NULL, removed_at INTEGER);
   CREATE TABLE list_posts (
     id TEXT PRIMARY KEY, poster TEXT NOT NULL, subject TEXT NOT NULL, received_at INTEGER NOT NULL,
     decision TEXT NOT NULL, reason TEXT, raw_path TEXT, summary_id TEXT, summary_at INTEGER);
   CREATE TABLE list_copies (
     id TEXT PRIMARY KEY, post TEXT NOT NULL REFERENCES list_posts(id), subscriber TEXT NOT NULL,
     state TEXT NOT NULL, submitted INTEGER NOT NULL, updated_at INTEGER NOT NULL, reason TEXT);
   CREATE INDEX list_copies_post ON list_copies(post);`,
  // 2: subscription by mail with a confirmation token; failed copies per member (rules.ts).
  `CREATE TABLE list_confirmations (
     token TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, created_at INTEGER NOT NULL, used_at INTEGER);
   CREATE INDEX list_confirmations_fingerprint ON list_confirmations(fingerprint, created_at);
   ALTER TABLE list_members ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE list_members ADD COLUMN first_failure_at INTEGER;`,
];

export interface ListSettings {
  name: string;
  email: string;
  policy: PostingPolicy;
  chat: boolean;
  maxBytes: number;
  archive?: string;
  /** When the poster's summary goes out with copies still under way (they count as delayed). */
  summaryAfterMs: number;
}

export interface ListMember {
  fingerprint: Fingerprint;
  email: string;
  name: string;
  moderator: boolean;
  addedAt: number;
  /** Failed copies in a row (rules.ts isBouncing). */
  failures: number;
}

export interface ListPost {
  id: MessageId;
  poster: Fingerprint;
  subject: string;
  receivedAt: number;
  decision: 'distribute' | 'hold' | 'refuse';
  reason?: string;
  rawPath?: string;
  summaryId?: MessageId;
}

export interface ListCopy {
  id: MessageId;
  post: MessageId;
  subscriber: Fingerprint;
  state: CopyState;
  submitted: boolean;
  updatedAt: number;
  reason?: string;
}

export function migrateLists(db: Db): void {
  migrate(db, 'lists', MIGRATIONS);
}

export class ListStore {
  constructor(
    private readonly db: Db,
    private readonly clock: () => number = Date.now,
  ) {
    migrateLists(db);
  }

  settings(): ListSettings | undefined {
    const row = this.db.prepare('SELECT * FROM list_settings WHERE id = 1').get() as
      Record<string, unknown> | undefined;
    if (!row) return undefined;
    return {
      name: row.name as string,
      email: row.email as string,
      policy: row.policy as PostingPolicy,
      chat: row.chat === 1,
      maxBytes: row.max_bytes as number,
      archive: (row.archive as string | null) ?? undefined,
      summaryAfterMs: row.summary_after_ms as number,
    };
  }

  saveSettings(s: ListSettings): void {
    this.db
      .prepare(
        `INSERT INTO list_settings (id, name, email, policy, chat, max_bytes, archive, summary_after_ms)
         VALUES (1, @name, @email, @policy, @chat, @maxBytes, @archive, @summaryAfterMs)
         ON CONFLICT(id) DO UPDATE SET name = @name, email = @email, policy = @policy, chat = @chat,
           max_bytes = @maxBytes, archive = @archive, summary_after_ms = @summaryAfterMs`,
      )
      .run({ ...s, chat: s.chat ? 1 : 0, archive: s.archive ?? null });
  }

  /** Adds a member or updates one (a removed member added again is a member again). */
  addMember(m: Omit<ListMember, 'addedAt' | 'failures'>): ListMember {
    this.db
      .prepare(
        `INSERT INTO list_members (fingerprint, email, name, moderator, added_at, removed_at)
         VALUES (@fingerprint, @email, @name, @moderator, @now, NULL)
         ON CONFLICT(fingerprint) DO UPDATE SET email = @email, name = @name, moderator = @moderator,
           removed_at = NULL,
           failures = CASE WHEN removed_at IS NULL THEN failures ELSE 0 END,
           first_failure_at = CASE WHEN removed_at IS NULL THEN first_failure_at ELSE NULL END,
           added_at = CASE WHEN removed_at IS NULL THEN added_at ELSE @now END`,
      )
      .run({ ...m, moderator: m.moderator ? 1 : 0, now: this.clock() });
    return this.member(m.fingerprint)!;
  }

  /** True if there was an active member to remove. */
  removeMember(fingerprint: Fingerprint): boolean {
    const result = this.db
      .prepare('UPDATE list_members SET removed_at = ? WHERE fingerprint = ? AND removed_at IS NULL')
      .run(this.clock(), fingerprint);
    return result.changes > 0;
  }

  member(fingerprint: Fingerprint): ListMember | undefined {
    const row = this.db
      .prepare('SELECT * FROM list_members WHERE fingerprint = ? AND removed_at IS NULL')
      .get(fingerprint) as Record<string, unknown> | undefined;
    return row ? toMember(row) : undefined;
  }

  /** Active members (moderators included), in the order they joined. */
  members(): ListMember[] {
    return (
      this.db
        .prepare('SELECT * FROM list_members WHERE removed_at IS NULL ORDER BY added_at, fingerprint')
        .all() as Record<string, unknown>[]
    ).map(toMember);
  }

  /** A confirmation token sent to an entity that asked to subscribe. */
  addConfirmation(token: string, fingerprint: Fingerprint): void {
    this.db
      .prepare('INSERT INTO list_confirmations (token, fingerprint, created_at) VALUES (?, ?, ?)')
      .run(token, fingerprint, this.clock());
  }

  confirmation(token: string): { fingerprint: Fingerprint; createdAt: number; usedAt?: number } | undefined {
    const r = this.db.prepare('SELECT * FROM list_confirmations WHERE token = ?').get(token.toLowerCase()) as
      { fingerprint: Fingerprint; created_at: number; used_at: number | null } | undefined;
    return r
      ? { fingerprint: r.fingerprint, createdAt: r.created_at, usedAt: r.used_at ?? undefined }
      : undefined;
  }

  /** Marks a token used; false if it was already (a confirmation counts once). */
  useConfirmation(token: string): boolean {
    return (
      this.db
        .prepare('UPDATE list_confirmations SET used_at = ? WHERE token = ? AND used_at IS NULL')
        .run(this.clock(), token.toLowerCase()).changes > 0
    );
  }

  /** Confirmation requests sent to an entity since a time. */
  confirmationsSince(fingerprint: Fingerprint, since: number): number {
    return (
      this.db
        .prepare('SELECT COUNT(*) AS n FROM list_confirmations WHERE fingerprint = ? AND created_at > ?')
        .get(fingerprint, since) as { n: number }
    ).n;
  }

  /** One more failed copy for an active member; the count and when the run of failures began. */
  recordFailure(fingerprint: Fingerprint): { failures: number; firstFailureAt: number } | undefined {
    this.db
      .prepare(
        `UPDATE list_members SET failures = failures + 1, first_failure_at = COALESCE(first_failure_at, ?)
         WHERE fingerprint = ? AND removed_at IS NULL`,
      )
      .run(this.clock(), fingerprint);
    const r = this.db
      .prepare(
        'SELECT failures, first_failure_at FROM list_members WHERE fingerprint = ? AND removed_at IS NULL',
      )
      .get(fingerprint) as { failures: number; first_failure_at: number } | undefined;
    return r ? { failures: r.failures, firstFailureAt: r.first_failure_at } : undefined;
  }

  /** A delivered copy: the member's run of failures is over. */
  resetFailures(fingerprint: Fingerprint): void {
    this.db
      .prepare(
        'UPDATE list_members SET failures = 0, first_failure_at = NULL WHERE fingerprint = ? AND failures > 0',
      )
      .run(fingerprint);
  }

  /** Records a post and, for a distributed one, its copies (not yet submitted), in one transaction. */
  recordPost(post: ListPost, copies: { id: MessageId; subscriber: Fingerprint }[]): void {
    const now = this.clock();
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO list_posts (id, poster, subject, received_at, decision, reason, raw_path)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          post.id,
          post.poster,
          post.subject,
          post.receivedAt,
          post.decision,
          post.reason ?? null,
          post.rawPath ?? null,
        );
      const insert = this.db.prepare(
        `INSERT INTO list_copies (id, post, subscriber, state, submitted, updated_at)
         VALUES (?, ?, ?, 'pending', 0, ?)`,
      );
      for (const c of copies) insert.run(c.id, post.id, c.subscriber, now);
    })();
  }

  post(id: MessageId): ListPost | undefined {
    const row = this.db.prepare('SELECT * FROM list_posts WHERE id = ?').get(id) as
      Record<string, unknown> | undefined;
    return row ? toPost(row) : undefined;
  }

  recentPosts(limit: number): ListPost[] {
    return (
      this.db
        .prepare('SELECT * FROM list_posts ORDER BY received_at DESC, rowid DESC LIMIT ?')
        .all(limit) as Record<string, unknown>[]
    ).map(toPost);
  }

  copies(post: MessageId): ListCopy[] {
    return (
      this.db.prepare('SELECT * FROM list_copies WHERE post = ? ORDER BY rowid').all(post) as Record<
        string,
        unknown
      >[]
    ).map(toCopy);
  }

  copy(id: MessageId): ListCopy | undefined {
    const row = this.db.prepare('SELECT * FROM list_copies WHERE id = ?').get(id) as
      Record<string, unknown> | undefined;
    return row ? toCopy(row) : undefined;
  }

  /** Copies recorded but not handed to the delivery engine yet (a crash in the middle of a fan-out). */
  unsubmitted(): ListCopy[] {
    return (
      this.db.prepare('SELECT * FROM list_copies WHERE submitted = 0 ORDER BY rowid').all() as Record<
        string,
        unknown
      >[]
    ).map(toCopy);
  }

  markSubmitted(id: MessageId): void {
    this.db
      .prepare('UPDATE list_copies SET submitted = 1, updated_at = ? WHERE id = ?')
      .run(this.clock(), id);
  }

  /** A copy's new state; a final state (delivered, failed) is never left again. */
  setCopyState(id: MessageId, state: CopyState, reason?: string): boolean {
    const result = this.db
      .prepare(
        `UPDATE list_copies SET state = ?, reason = COALESCE(?, reason), updated_at = ?
         WHERE id = ? AND state NOT IN ('delivered', 'failed')`,
      )
      .run(state, reason ?? null, this.clock(), id);
    return result.changes > 0;
  }

  /**
   * A held post becomes distributed, with its copies (not yet submitted), in one transaction;
   * false if it was not held (decided already: an approval that comes twice counts once).
   */
  approve(post: MessageId, copies: { id: MessageId; subscriber: Fingerprint }[]): boolean {
    const now = this.clock();
    return this.db.transaction(() => {
      const changed = this.db
        .prepare(
          `UPDATE list_posts SET decision = 'distribute', reason = 'approved' WHERE id = ? AND decision = 'hold'`,
        )
        .run(post).changes;
      if (changed === 0) return false;
      const insert = this.db.prepare(
        `INSERT INTO list_copies (id, post, subscriber, state, submitted, updated_at) VALUES (?, ?, ?, 'pending', 0, ?)`,
      );
      for (const c of copies) insert.run(c.id, post, c.subscriber, now);
      return true;
    })();
  }

  /** A held post is refused by a moderator; false if it was not held. */
  reject(post: MessageId, reason: string): boolean {
    return (
      this.db
        .prepare(`UPDATE list_posts SET decision = 'refuse', reason = ? WHERE id = ? AND decision = 'hold'`)
        .run(reason, post).changes > 0
    );
  }

  /** Distributed posts whose poster has not had the summary yet. */
  postsAwaitingSummary(): ListPost[] {
    return (
      this.db
        .prepare(
          `SELECT * FROM list_posts WHERE decision = 'distribute' AND summary_at IS NULL ORDER BY received_at`,
        )
        .all() as Record<string, unknown>[]
    ).map(toPost);
  }

  /** Marks the summary sent; false if another call already did (one summary per post). */
  markSummarised(post: MessageId, summaryId: MessageId): boolean {
    const result = this.db
      .prepare('UPDATE list_posts SET summary_id = ?, summary_at = ? WHERE id = ? AND summary_at IS NULL')
      .run(summaryId, this.clock(), post);
    return result.changes > 0;
  }
}

function toMember(row: Record<string, unknown>): ListMember {
  return {
    fingerprint: row.fingerprint as Fingerprint,
    email: row.email as string,
    name: row.name as string,
    moderator: row.moderator === 1,
    addedAt: row.added_at as number,
    failures: (row.failures as number | undefined) ?? 0,
  };
}

function toPost(row: Record<string, unknown>): ListPost {
  return {
    id: row.id as MessageId,
    poster: row.poster as Fingerprint,
    subject: row.subject as string,
    receivedAt: row.received_at as number,
    decision: row.decision as ListPost['decision'],
    reason: (row.reason as string | null) ?? undefined,
    rawPath: (row.raw_path as string | null) ?? undefined,
    summaryId: (row.summary_id as MessageId | null) ?? undefined,
  };
}

function toCopy(row: Record<string, unknown>): ListCopy {
  return {
    id: row.id as MessageId,
    post: row.post as MessageId,
    subscriber: row.subscriber as Fingerprint,
    state: row.state as CopyState,
    submitted: row.submitted === 1,
    updatedAt: row.updated_at as number,
    reason: (row.reason as string | null) ?? undefined,
  };
}

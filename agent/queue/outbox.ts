import { Queue, Worker, type Job } from 'bullmq';
import type { Fingerprint, MessageId } from '../../common/ids.ts';
import { KithError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { migrate, statementCache, type Db } from '../../store/db.ts';
import { groupCommitOf, Rider } from '../../store/group-commit.ts';
import type { RedisConnection } from './redis-server.ts';
import { keepReconciled } from './reconcile.ts';
import { giveUpCause, nextRetryDelay, shouldGiveUp, type GiveUp } from './policy.ts';

/** An outbound message as the outbox keeps it durably. */
export interface OutboxEntry {
  id: MessageId;
  sender: Fingerprint;
  recipient: Fingerprint;
  /** The RFC 5322 message file (or any payload file), kept until delivery ends. */
  rawPath: string;
  size: number;
  state: 'queued' | 'in-flight' | 'delivered' | 'failed';
  createdAt: number;
  attempts: number;
  lastError?: string;
}

/** What a caller hands to submit(). */
export type NewOutboxEntry = Omit<OutboxEntry, 'state' | 'createdAt' | 'attempts'>;

/** One step of a message's journey, as progress reports tell it. */
export interface HopRecord {
  hop: number;
  /** The agent reached, when the report names it (the sender may know only the hop index). */
  agent?: string;
  event: string;
  at: number;
}

/** The job's progress value in BullMQ: every hop reached so far, with timestamps. */
export interface JobProgress {
  state: OutboxEntry['state'];
  hops: HopRecord[];
  /** Large messages: chunks the recipient acknowledged so far. */
  chunks?: { acked: number; total: number };
}

const MIGRATIONS = [
  `CREATE TABLE outbox (
     id TEXT PRIMARY KEY, sender TEXT NOT NULL, recipient TEXT NOT NULL,
     raw_path TEXT NOT NULL, size INTEGER NOT NULL, state TEXT NOT NULL,
     created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
   CREATE INDEX outbox_state ON outbox(state);
   CREATE TABLE outbox_hops (
     id TEXT NOT NULL REFERENCES outbox(id) ON DELETE CASCADE, hop INTEGER NOT NULL,
     agent TEXT, event TEXT NOT NULL, at INTEGER NOT NULL);
   CREATE INDEX outbox_hops_id ON outbox_hops(id);`,
  // Whether the final status (delivered/failed) reached the gateway: a crash between finish()
  // and the status email must not lose the email. Rows finished before this column existed
  // are swept once too; the gateway says nothing twice for a copy it already reported.
  `ALTER TABLE outbox ADD COLUMN final_reported INTEGER NOT NULL DEFAULT 0;`,
];

/**
 * How long a hop record may wait for others to share its commit. Nothing waits on it but job
 * progress and status emails, which a few milliseconds do not change.
 */
const HOP_FLUSH_MS = 10;
/**
 * How long the gathered records then wait for another write's commit to ride with (GroupCommit
 * runSoon) before committing alone: at one SMTP connection each message's three "reached"
 * records took commits of their own (bench/RESULTS.md 10.9).
 */
const HOP_RIDE_MS = 40;

/** An `outbox` row as SQLite returns it. */
type OutboxRow = Record<string, string | number | null>;

function entryOf(row: OutboxRow): OutboxEntry {
  return {
    id: row.id as MessageId,
    sender: row.sender as Fingerprint,
    recipient: row.recipient as Fingerprint,
    rawPath: row.raw_path as string,
    size: row.size as number,
    state: row.state as OutboxEntry['state'],
    createdAt: row.created_at as number,
    attempts: row.attempts as number,
    lastError: (row.last_error as string | null) ?? undefined,
  };
}

/** A hop record not committed yet, with the recordHop() call waiting for it. */
interface PendingHop {
  id: MessageId;
  record: HopRecord;
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface OutboxOptions {
  db: Db;
  connection: RedisConnection;
  /** Redis key prefix of this node. */
  prefix: string;
  log: Logger;
  /** Give up after this long (a "failed" status). */
  maxAgeMs: number;
  /**
   * One delivery attempt: hand the message to the first hop of a path. Throwing means
   * "try again later" (no path yet, next hop unreachable); the queue backs off and retries.
   */
  attempt: (entry: OutboxEntry) => Promise<void>;
  /** Told when an entry is given up (too old): no path was ever found, or it expired on the way. */
  onGiveUp: (entry: OutboxEntry, why: GiveUp) => void;
  /** Worker concurrency: attempts in flight at once. */
  concurrency?: number;
  clock?: () => number;
}

/**
 * The durable outbox: SQLite holds the truth (a row is committed before submit() resolves),
 * BullMQ on Redis schedules the attempts and shows each message's progress hop by hop. A job
 * lost with Redis is re-created from the rows at start and every `reconcileMs`.
 */
export class Outbox {
  private queue?: Queue;
  private worker?: Worker;
  private stopReconciling?: () => void;
  private readonly clock: () => number;
  private reconciling = false;
  /** Chunk progress of large messages in flight; transient, so kept in memory only. */
  private readonly chunks = new Map<MessageId, { acked: number; total: number }>();
  private readonly listeners = new Set<(id: MessageId) => void>();
  /** Hop records waiting for the next flushHops() (at most HOP_FLUSH_MS). */
  private readonly pendingHops: PendingHop[] = [];
  /**
   * Hop records handed to the group commit and not written yet (progressOf shows them). A record
   * leaves this set when its INSERT runs, not when it is durable: from then on the connection reads
   * the row itself, and showing both made `kith track` list a hop twice while the WAL's sync ran
   * (test/agents/line, beside a CPU hog).
   */
  private readonly committingHops = new Set<PendingHop>();
  private hopFlushTimer?: ReturnType<typeof setTimeout>;

  constructor(private readonly options: OutboxOptions) {
    this.clock = options.clock ?? Date.now;
    migrate(options.db, 'outbox', MIGRATIONS);
    this.stmt = statementCache(options.db);
  }

  /** Statements compiled once (get and progressOf run several times for every message). */
  private readonly stmt: ReturnType<typeof statementCache>;

  async start(reconcileMs = 30_000): Promise<void> {
    const { connection, prefix } = this.options;
    this.queue = new Queue('outbox', { connection, prefix });
    this.queue.on('error', (err) => this.options.log.warn({ err: err.message }, 'outbox queue error'));
    this.worker = new Worker('outbox', (job) => this.process(job), {
      connection,
      prefix,
      concurrency: this.options.concurrency ?? 16,
      settings: { backoffStrategy: (attempts: number) => nextRetryDelay(attempts) },
    });
    this.worker.on('error', (err) => this.options.log.warn({ err: err.message }, 'outbox worker error'));
    await this.reconcile();
    this.stopReconciling = keepReconciled(
      this.queue,
      () => this.reconcile(),
      reconcileMs,
      () => this.options.log.info('Redis is back: reconciling the outbox'),
    );
  }

  /** Commits the entry, then schedules it. Durable when it resolves, even if Redis is down. */
  async submit(entry: NewOutboxEntry): Promise<void> {
    this.add(entry);
    this.queueJob(entry.id);
  }

  /**
   * submit() in two steps: the row (synchronous; inside the caller's transaction, e.g. the SMTP
   * gateway's group commit), then queueJob() once that transaction committed.
   */
  add(entry: NewOutboxEntry): void {
    const now = this.clock();
    this.stmt(
      `INSERT INTO outbox (id, sender, recipient, raw_path, size, state, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)`,
    ).run(entry.id, entry.sender, entry.recipient, entry.rawPath, entry.size, now, now);
  }

  /** Adds the BullMQ job of a committed row, in the background. */
  queueJob(id: MessageId): void {
    // The committed row is the truth, so the submission (and SMTP's 250) does not wait for Redis:
    // the job is added in the background, and an add that fails or is lost with Redis is
    // re-created by reconcile() (when Redis is back, and every reconcileMs).
    this.schedule(id).catch((err: Error) => {
      this.options.log.warn({ id, err: err.message }, 'queue unavailable; the outbox will re-create the job');
    });
  }

  /** Ensures every unfinished entry has a job (after a Redis restart or loss). */
  async reconcile(): Promise<number> {
    if (this.reconciling) return 0;
    this.reconciling = true;
    try {
      return await this.reconcileRows();
    } finally {
      this.reconciling = false;
    }
  }

  private async reconcileRows(): Promise<number> {
    const rows = this.stmt("SELECT id FROM outbox WHERE state IN ('queued', 'in-flight')").all() as {
      id: MessageId;
    }[];
    let created = 0;
    for (const { id } of rows) {
      const job = await this.queue!.getJob(id);
      if (!job || (await job.isCompleted()) || (await job.isFailed())) {
        if (job) await job.remove().catch(() => {});
        await this.schedule(id);
        created++;
      }
    }
    if (created > 0) this.options.log.info({ created }, 'outbox jobs re-created from the store');
    return created;
  }

  private async schedule(id: MessageId, delayMs = 0): Promise<void> {
    await this.queue!.add(
      'deliver',
      { id },
      { jobId: id, delay: delayMs, attempts: 1_000_000, backoff: { type: 'custom' }, removeOnComplete: 1000 },
    );
  }

  private async process(job: Job): Promise<void> {
    const entry = this.get((job.data as { id: MessageId }).id);
    if (!entry || entry.state === 'delivered' || entry.state === 'failed') return;
    if (shouldGiveUp(entry.createdAt, this.clock(), this.options.maxAgeMs)) {
      const why = giveUpCause(this.progressOf(entry.id).hops);
      await this.finish(entry.id, 'failed', why.reason);
      this.options.onGiveUp(this.get(entry.id) ?? entry, why);
      return;
    }
    // In the group commit (store/group-commit.ts): the attempts of every job starting now share one fsync.
    const { db } = this.options;
    const now = this.clock();
    await groupCommitOf(db).run(() =>
      this.stmt(
        "UPDATE outbox SET attempts = attempts + 1, state = 'in-flight', updated_at = ? WHERE id = ?",
      ).run(now, entry.id),
    );
    try {
      await this.options.attempt({ ...entry, attempts: entry.attempts + 1 });
    } catch (err) {
      // Not over a final row's reason: an attempt that fails after the entry was given up (or
      // delivered) meanwhile must not replace why it ended (test/status/give-up, seen flaky).
      this.stmt(
        "UPDATE outbox SET last_error = ?, updated_at = ? WHERE id = ? AND state NOT IN ('delivered', 'failed')",
      ).run((err as Error).message, this.clock(), entry.id);
      throw err;
    }
    await job.updateProgress(this.progressOf(entry.id)).catch(() => {});
  }

  /** Records a hop reached (from a progress report) in SQLite and in the job's progress. */
  async recordHop(id: MessageId, record: HopRecord): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.pendingHops.push({ id, record, resolve, reject });
      this.hopFlushTimer ??= setTimeout(() => this.flushHops(), HOP_FLUSH_MS);
    });
    this.publishProgress(id);
  }

  /**
   * Commits the hop records of the last HOP_FLUSH_MS in one group commit. Why: reports of many
   * messages in flight arrive together, and one commit (one fsync at synchronous=FULL) per
   * report blocked the event loop that also answers SMTP. Each recordHop() still resolves only
   * after its row is committed; progressOf adds the records still pending, so none is missed.
   */
  private flushHops(): void {
    clearTimeout(this.hopFlushTimer);
    this.hopFlushTimer = undefined;
    const batch = this.pendingHops.splice(0);
    if (batch.length === 0) return;
    const { db } = this.options;
    if (!db.open) {
      // A report that arrived while the node was closing: the row is gone with the process, as
      // a report lost in transit would be; the sender re-reads progress from the rows it has.
      const closed = new KithError('ERR_OUTBOX_CLOSED', 'the outbox is stopped', 'restart the node');
      for (const h of batch) h.reject(closed);
      return;
    }
    const insert = this.stmt('INSERT INTO outbox_hops (id, hop, agent, event, at) VALUES (?, ?, ?, ?, ?)');
    const run = (h: PendingHop) => {
      insert.run(h.id, h.record.hop, h.record.agent ?? null, h.record.event, h.record.at);
      this.committingHops.delete(h);
    };
    // Each record its own write of the connection's group commit: they share its one commit with
    // whatever else is written next, and one bad record fails alone (its savepoint).
    const group = groupCommitOf(db);
    for (const h of batch) {
      this.committingHops.add(h);
      group
        .runSoon(() => run(h), HOP_RIDE_MS)
        .then(
          () => h.resolve(),
          (err: Error) => h.reject(err),
        )
        .finally(() => this.committingHops.delete(h));
    }
  }

  /** Records how many chunks of a large message the recipient has acknowledged. */
  recordChunks(id: MessageId, acked: number, total: number): void {
    this.chunks.set(id, { acked, total });
    this.publishProgress(id);
  }

  /**
   * The message is in the recipient's mailbox (or given up): no more attempts. `hop`: a last hop
   * record (the "delivered" one), written in the same write instead of a commit of its own.
   */
  async finish(id: MessageId, state: 'delivered' | 'failed', note?: string, hop?: HopRecord): Promise<void> {
    const { db } = this.options;
    const now = this.clock();
    // One commit with every other message finishing (or starting) now; resolves once durable.
    // With a last hop record (the "delivered" one), the finish waits as that record did (at most
    // HOP_FLUSH_MS) for other writes to ride with: the finishes of messages delivered together
    // then share a commit (at 16 SMTP connections, run() at once made more commits: 10.9).
    const group = groupCommitOf(db);
    const write = () => {
      if (hop) {
        this.stmt('INSERT INTO outbox_hops (id, hop, agent, event, at) VALUES (?, ?, ?, ?, ?)').run(
          id,
          hop.hop,
          hop.agent ?? null,
          hop.event,
          hop.at,
        );
      }
      this.stmt(
        'UPDATE outbox SET state = ?, last_error = COALESCE(?, last_error), updated_at = ? WHERE id = ?',
      ).run(state, note ?? null, now, id);
    };
    await (hop ? group.runSoon(write, HOP_FLUSH_MS) : group.run(write));
    this.chunks.delete(id);
    this.publishProgress(id);
  }

  /** markFinalReported as a Rider: the gateway commits it with the status email (store/group-commit.ts). */
  finalReportedRider(id: MessageId): Rider {
    return new Rider(this.options.db, () =>
      this.stmt('UPDATE outbox SET final_reported = 1 WHERE id = ?').run(id),
    );
  }

  /** The gateway has the final status of this entry (its status email, if one is due, is stored). */
  async markFinalReported(id: MessageId): Promise<void> {
    const { db } = this.options;
    await groupCommitOf(db).run(() => this.stmt('UPDATE outbox SET final_reported = 1 WHERE id = ?').run(id));
  }

  /** Finished entries whose final status has not reached the gateway yet, oldest first, with when they finished. */
  finishedUnreported(limit = 1000): Array<OutboxEntry & { finishedAt: number }> {
    const rows = this.stmt(
      `SELECT * FROM outbox WHERE state IN ('delivered', 'failed') AND final_reported = 0
         ORDER BY updated_at, rowid LIMIT ?`,
    ).all(limit) as OutboxRow[];
    return rows.map((r) => ({ ...entryOf(r), finishedAt: r.updated_at as number }));
  }

  /** Hears of every recorded change of an entry (hops, chunks, final state); returns an unsubscribe. */
  onChange(listener: (id: MessageId) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private publishProgress(id: MessageId): void {
    for (const listener of this.listeners) listener(id);
    // One command, not getJob (which reads the whole job) then an update; a job that is gone
    // (Redis lost it) only misses its progress until reconcile() re-creates it. Not awaited:
    // the SQLite row is the truth and this is only what `kith track` shows, while a Redis that
    // is down holds the command until it is back (ioredis's offline queue). Awaited, that held
    // finish() and with it the "Delivered" status email for as long as Redis was gone.
    void this.queue?.updateJobProgress(id, this.progressOf(id)).catch(() => {});
  }

  get(id: MessageId): OutboxEntry | undefined {
    const row = this.stmt('SELECT * FROM outbox WHERE id = ?').get(id) as OutboxRow | undefined;
    return row && entryOf(row);
  }

  /** Entries still on their way (queued or in flight), oldest first. */
  unfinished(): OutboxEntry[] {
    const rows = this.stmt(
      "SELECT * FROM outbox WHERE state IN ('queued', 'in-flight') ORDER BY created_at, rowid",
    ).all() as OutboxRow[];
    return rows.map(entryOf);
  }

  /** The most recent outbound messages, newest first (`kith outbox`). */
  recent(limit = 20): OutboxEntry[] {
    const rows = this.stmt('SELECT * FROM outbox ORDER BY created_at DESC, rowid DESC LIMIT ?').all(
      limit,
    ) as OutboxRow[];
    return rows.map(entryOf);
  }

  progressOf(id: MessageId): JobProgress {
    const entry = this.get(id);
    const rows = this.stmt('SELECT hop, agent, event, at FROM outbox_hops WHERE id = ? ORDER BY at, hop').all(
      id,
    ) as { hop: number; agent: string | null; event: string; at: number }[];
    const hops: HopRecord[] = rows.map((h) => ({
      hop: h.hop,
      agent: h.agent ?? undefined,
      event: h.event,
      at: h.at,
    }));
    // Records not written yet count too (flushing here would undo the batching); a written one is
    // in `rows` already, committed or not (this connection reads its own writes).
    const pending = [...this.pendingHops, ...this.committingHops]
      .filter((h) => h.id === id)
      .map((h) => h.record);
    if (pending.length > 0) {
      hops.push(...pending);
      hops.sort((a, b) => a.at - b.at || a.hop - b.hop);
    }
    return {
      state: entry?.state ?? 'queued',
      hops,
      ...(this.chunks.has(id) ? { chunks: this.chunks.get(id) } : {}),
    };
  }

  async stop(): Promise<void> {
    this.flushHops();
    this.stopReconciling?.();
    await this.worker?.close();
    await this.queue?.close();
    // Reports that arrived while the worker drained: commit them now, before the node closes
    // the database, instead of leaving a timer that would fire on a closed connection.
    this.flushHops();
    if (this.options.db.open) groupCommitOf(this.options.db).flush();
  }
}

import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KithError } from '../common/errors.ts';
import type { Db } from './db.ts';

/** A write waiting for the next group commit, with its caller's promise. */
interface PendingWrite {
  write: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** Makes a file's written data durable (fdatasync), off the event loop. */
export type SyncFile = (path: string) => Promise<void>;

/** fdatasync of `path` in libuv's thread pool: the event loop goes on meanwhile. */
export const fdatasyncFile: SyncFile = async (path) => {
  const handle = await open(path, 'r');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
};

/**
 * Group commit for one SQLite connection: the writes of every caller waiting at the same moment
 * share one transaction, so one commit (one WAL fsync) makes all of them durable. Why: a commit
 * blocks the event loop for its fsync, and a CPU profile of the SMTP submission path
 * (bench/RESULTS.md, section 10) found ~38% of the gateway process's busy time in commits made
 * one by one, with concurrent submissions queueing behind each other's fsyncs.
 *
 * run(write) queues a synchronous write and resolves with its result only after the commit that
 * contains it is durable, so a caller that answers a client afterwards (SMTP's 250) still does so
 * only once its own rows are on disk. The queue is flushed in the event loop's check phase
 * (setImmediate): everything that became ready in the same loop turn shares the commit, and a
 * lone caller waits no timer. Each write runs in its own savepoint: one that throws is rolled
 * back alone and only its caller is rejected. A commit that fails rejects every write in it.
 *
 * The fsync is not made on the event loop (bench/RESULTS.md 10.6: at 2.5 ms each, the ~9 commits
 * of a message blocked the sender's loop longer than its CPU work took): the transaction commits
 * at synchronous=NORMAL (WAL frames written, no fsync), then the WAL file is fdatasync'ed in the
 * thread pool, and only then are its writers resolved. The WAL is appended in order, so that one
 * fdatasync makes this commit and every earlier one durable. At most one such sync runs at a
 * time; commits made while it runs wait for the next one, which starts when it ends and covers
 * them all (the longer a sync takes, the more writes share the next). Other writes of the
 * connection (outside the group commit) still commit at synchronous=FULL. A database without a
 * WAL file (in memory) commits at FULL as before, and so does flush(), called before a close.
 */
export class GroupCommit {
  private readonly pending: PendingWrite[] = [];
  private scheduled = false;
  /** Commits made and writes they carried, for benchmarks and tests. */
  readonly stats = { commits: 0, writes: 0, syncs: 0 };
  /** The WAL file to fdatasync after a commit; null: commit at synchronous=FULL (no WAL file). */
  private wal?: string | null;
  private syncing = false;
  /** Writers of commits made since the running sync started: resolved by the next one. */
  private readonly unsynced: Array<(err?: Error) => void> = [];
  private directorySynced = false;
  /** Set while only runSoon() writes wait: the latest moment they are committed anyway. */
  private soonTimer: NodeJS.Timeout | undefined;

  /**
   * `syncFile`: how the WAL is synced after a commit; null commits at synchronous=FULL, the fsync
   * on the event loop (the design before bench/RESULTS.md 10.6, which bench/store compares with).
   */
  constructor(
    private readonly db: Db,
    private readonly syncFile: SyncFile | null = fdatasyncFile,
  ) {}

  /** Runs `write` (synchronous SQLite statements) in the next group commit; resolves once durable. */
  run<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ write, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /**
   * run() for a write nobody waits on at once (a recipient's hop record, a kept sealed form): it
   * does not start a commit of its own but rides with the next one a run() starts, or is
   * committed alone after `withinMs`. Why: at the recipient such a write came a few ms before the
   * mailbox append of the same message (an OpenPGP decrypt in between), so it took a commit (one
   * fsync) of its own; queued like this it shares the append's (bench/RESULTS.md 10.8). FIFO as
   * run(): a later write's commit holds it, or an earlier commit did.
   */
  runSoon<T>(write: () => T, withinMs = 50): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ write, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled && !this.soonTimer) {
        this.soonTimer = setTimeout(() => {
          this.soonTimer = undefined;
          this.schedule();
        }, withinMs);
      }
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.commit(false));
  }

  /**
   * Commits what is queued now, durably before it returns (synchronous=FULL): called by the owner
   * before it closes the database.
   */
  flush(): void {
    this.commit(true);
  }

  private walFile(): string | null {
    if (this.wal === undefined) {
      const mode = String(this.db.pragma('journal_mode', { simple: true })).toLowerCase();
      this.wal = this.syncFile && !this.db.memory && mode === 'wal' ? `${this.db.name}-wal` : null;
    }
    return this.wal;
  }

  private commit(closing: boolean): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    if (this.db.open && this.db.inTransaction) {
      // Someone's transaction is open (it cannot span an await, so this is a synchronous caller
      // further up the stack of a flush() call): ours would only be a savepoint inside it and
      // "committed" would be a lie. Try again in the next turn.
      this.schedule();
      return;
    }
    const batch = this.pending.splice(0);
    if (this.soonTimer) {
      clearTimeout(this.soonTimer);
      this.soonTimer = undefined;
    }
    if (!this.db.open) {
      const closed = new KithError('ERR_STORE_CLOSED', 'the database is closed', 'restart the node');
      for (const p of batch) p.reject(closed);
      return;
    }
    const wal = closing ? null : this.walFile();
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; err: Error }> = [];
    try {
      if (wal) this.db.pragma('synchronous = NORMAL');
      try {
        this.db.transaction(() => {
          for (const p of batch) {
            try {
              // Nested: a savepoint, rolled back alone when this write throws.
              outcomes.push({ ok: true, value: this.db.transaction(p.write)() });
            } catch (err) {
              outcomes.push({ ok: false, err: err as Error });
            }
          }
        })();
      } finally {
        if (wal) this.db.pragma('synchronous = FULL');
      }
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
      return;
    }
    this.stats.commits += 1;
    this.stats.writes += batch.length;
    const settle = (syncErr?: Error) =>
      batch.forEach((p, i) => {
        const outcome = outcomes[i]!;
        if (syncErr) p.reject(syncErr);
        else if (outcome.ok) p.resolve(outcome.value);
        else p.reject(outcome.err);
      });
    if (!wal) return settle();
    this.unsynced.push(settle);
    if (!this.syncing) this.sync(wal);
  }

  /** One fdatasync of the WAL for every commit made before it starts; then the next, if any. */
  private sync(wal: string): void {
    const waiting = this.unsynced.splice(0);
    this.syncing = true;
    const firstTime = !this.directorySynced;
    (async () => {
      await this.syncFile!(wal);
      // The WAL file's own directory entry, once: SQLite made the file at the first write.
      if (firstTime) await this.syncFile!(dirname(wal));
    })()
      .then(
        () => {
          this.directorySynced = true;
          return undefined;
        },
        (err: NodeJS.ErrnoException) => {
          // Closed meanwhile: SQLite checkpointed the WAL into the database file (fsynced) and
          // removed it, so the commits are durable.
          if (err.code === 'ENOENT' && !this.db.open) return undefined;
          return new KithError(
            'ERR_STORE_SYNC',
            `the database could not be synced: ${err.message}`,
            'check the disk',
          );
        },
      )
      .then((err) => {
        this.stats.syncs += 1;
        this.syncing = false;
        for (const settle of waiting) settle(err);
        if (this.unsynced.length > 0) this.sync(wal);
      });
  }
}

/**
 * A write its owner lets another module commit inside that module's own transaction, once: the
 * recipient's delivered mark rides in the mailbox append's savepoint, so the message and its mark
 * commit together (one fsync, bench/RESULTS.md 10.8) and a crash can no longer leave one without
 * the other. The owner checks `taken` afterwards and commits the write itself when nobody did.
 * Bound to its connection: a module on another database cannot take it.
 */
export class Rider {
  private write: (() => void) | undefined;

  constructor(
    private readonly db: Db,
    write: () => void,
  ) {
    this.write = write;
  }

  /** The write, for a caller about to run it inside a transaction on `db`; undefined after the first. */
  take(db: Db): (() => void) | undefined {
    if (db !== this.db) return undefined;
    const write = this.write;
    this.write = undefined;
    return write;
  }

  /** True once someone took the write (and so answers for committing it). */
  get taken(): boolean {
    return this.write === undefined;
  }

  /**
   * Takes `other`'s write into this one (run after it), when both are on the same connection and
   * this one is not taken yet; otherwise `other` is left to its owner.
   */
  and(other: Rider | undefined): this {
    const mine = this.write;
    const theirs = mine && other?.take(this.db);
    if (mine && theirs) {
      this.write = () => {
        mine();
        theirs();
      };
    }
    return this;
  }

  /** Commits the write in the connection's group commit unless someone took it; resolves once durable. */
  async commit(): Promise<void> {
    const write = this.take(this.db);
    if (write) await groupCommitOf(this.db).run(write);
  }
}

const groups = new WeakMap<Db, GroupCommit>();

/**
 * The one GroupCommit of a connection, shared by every module that writes through it. `syncFile`
 * counts only for the call that makes it (a test that holds the WAL's sync to look inside the
 * window between commit and durability passes one before any module writes).
 */
export function groupCommitOf(db: Db, syncFile: SyncFile = fdatasyncFile): GroupCommit {
  let group = groups.get(db);
  if (!group) {
    group = new GroupCommit(db, syncFile);
    groups.set(db, group);
  }
  return group;
}

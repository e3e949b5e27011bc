import { KithError } from '../common/errors.ts';
import type { Db } from './db.ts';

/** A write waiting for the next group commit, with its caller's promise. */
interface PendingWrite {
  write: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * Group commit for one SQLite connection: the writes of every caller waiting at the same moment
 * share one transaction, so one commit (one WAL fsync at synchronous=FULL) makes all of them
 * durable. Why: a commit blocks the event loop for its fsync, and a CPU profile of the SMTP
 * submission path (bench/RESULTS.md, section 10) found ~38% of the gateway process's busy time
 * in commits made one by one, with concurrent submissions queueing behind each other's fsyncs.
 *
 * run(write) queues a synchronous write and resolves with its result only after the commit that
 * contains it, so a caller that answers a client afterwards (SMTP's 250) still does so only once
 * its own rows are durable. The queue is flushed in the event loop's check phase
 * (setImmediate): everything that became ready in the same loop turn shares the commit, and a
 * lone caller waits no timer. Each write runs in its own savepoint: one that throws is rolled
 * back alone and only its caller is rejected. A commit that fails rejects every write in it.
 */
export class GroupCommit {
  private readonly pending: PendingWrite[] = [];
  private scheduled = false;
  /** Commits made and writes they carried, for benchmarks and tests. */
  readonly stats = { commits: 0, writes: 0 };

  constructor(private readonly db: Db) {}

  /** Runs `write` (synchronous SQLite statements) in the next group commit; resolves once committed. */
  run<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ write, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Commits what is queued now (also called by the owner before it closes the database). */
  flush(): void {
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
    if (!this.db.open) {
      const closed = new KithError('ERR_STORE_CLOSED', 'the database is closed', 'restart the node');
      for (const p of batch) p.reject(closed);
      return;
    }
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; err: Error }> = [];
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
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
      return;
    }
    this.stats.commits += 1;
    this.stats.writes += batch.length;
    batch.forEach((p, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) p.resolve(outcome.value);
      else p.reject(outcome.err);
    });
  }
}

const groups = new WeakMap<Db, GroupCommit>();

/** The one GroupCommit of a connection, shared by every module that writes through it. */
export function groupCommitOf(db: Db): GroupCommit {
  let group = groups.get(db);
  if (!group) {
    group = new GroupCommit(db);
    groups.set(db, group);
  }
  return group;
}

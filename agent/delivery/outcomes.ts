import type { MessageId } from '../../common/ids.ts';
import type { EngineContext } from './context.ts';

type Outcome = 'delivered' | 'failed';

/**
 * Where the end of a message's delivery is stored and announced (counters and the
 * 'delivered'/'failed' events). Outcomes a full disk would not take wait here and are retried.
 */
export class Outcomes {
  /** Messages whose outcome is known but not yet stored (store), with the retry timer. */
  private readonly unstored = new Map<MessageId, NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly ctx: EngineContext) {}

  /** Messages whose outcome waits for its group commit (storeDurable). */
  private readonly committing = new Set<MessageId>();

  /** Is this message's outcome known but not stored yet (so it must not be resumed)? */
  waiting(id: MessageId): boolean {
    return this.unstored.has(id) || this.committing.has(id);
  }

  /**
   * store() through the connection's group commit where the store has one: the outcomes of every
   * message finishing now share one commit, its fsync off the event loop (it was the largest
   * commit left on alice's loop after bench/RESULTS.md 10.7). Announced by the caller only once
   * durable, as with store(); a commit that fails falls back to store() and its retries.
   */
  async storeDurable(id: MessageId, state: Outcome, reason: string): Promise<boolean> {
    const { store } = this.ctx;
    if (!store.updateOutboxDurable) return this.store(id, state, reason);
    this.committing.add(id);
    try {
      await store.updateOutboxDurable(id, { state });
      this.unstored.delete(id);
      return true;
    } catch {
      if (this.stopped) return false; // the node closed its database meanwhile: resumed at the next start
      return this.store(id, state, reason);
    } finally {
      this.committing.delete(id);
    }
  }

  /**
   * Stores a message's outcome; false when that failed (a full disk: SQLITE_FULL), and then it is
   * tried again with backoff and announced once stored. Why not throw: finish() runs from a report
   * handler as `void`, so the error killed the node (an unhandled rejection, test/faults/disk-full);
   * why not forget it: the message would stay pending, with no status email, until the next start.
   * Meanwhile resume() leaves it alone, so nothing is sent again; if the node stops first, the
   * next start resumes it and the recipient's duplicate check answers "delivered" again.
   */
  store(id: MessageId, state: Outcome, reason: string, attempt = 0): boolean {
    const { ctx } = this;
    try {
      ctx.store.updateOutbox(id, { state });
      this.unstored.delete(id);
      return true;
    } catch (err) {
      ctx.count('outcome_not_stored');
      ctx.logger.warn(
        { id, state, attempt, err: (err as Error).message },
        'could not store a delivery outcome',
      );
      const retry = setTimeout(
        () => {
          if (!this.stopped && this.store(id, state, reason, attempt + 1)) this.announce(id, state, reason);
        },
        Math.min(500 * 2 ** attempt, 30_000),
      );
      this.unstored.set(id, retry);
      return false;
    }
  }

  /** Counts the outcome and tells the engine's listeners. */
  announce(id: MessageId, state: Outcome, reason: string): void {
    const { ctx } = this;
    ctx.count(state === 'delivered' ? 'messages_delivered' : 'messages_failed');
    if (state === 'delivered') ctx.emit({ kind: 'delivered', id, at: ctx.now() });
    else ctx.emit({ kind: 'failed', id, at: ctx.now(), reason });
  }

  /** No retry runs after this. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.unstored.values()) clearTimeout(timer);
    this.unstored.clear();
  }
}

// Retry decisions of the outbox, pure so they are easy to test and to read.

/**
 * Delay before the next attempt: 1 s, 2 s, 4 s ... capped at 5 minutes. A next hop that was
 * unreachable is usually back within seconds (a restart) or hours (a laptop asleep); the cap
 * keeps a sleeping recipient from waiting hours after it wakes.
 */
export function nextRetryDelay(attemptsMade: number): number {
  return Math.min(1000 * 2 ** Math.max(0, attemptsMade - 1), 5 * 60_000);
}

/** A message older than the configured maximum age is given up (and reported "failed"). */
export function shouldGiveUp(createdAt: number, now: number, maxAgeMs: number): boolean {
  return now - createdAt > maxAgeMs;
}

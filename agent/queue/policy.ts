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

/** Why an expired message is given up, for its "failed" status: the cause and a sentence for the sender. */
export interface GiveUp {
  cause: 'no-path' | 'expired';
  reason: string;
}

/**
 * The cause of a give-up, from the hops the message reached (hop 0 is the sender's own agent).
 * A message that never reached a hop never had a path: waiting longer was not the problem,
 * nobody who trusts the recipient's agent answered, so the sender is told to get an invitation
 * ("no-path", 5.4.4). A message that reached hops and then stopped had a way in and ran out of
 * time ("expired", 5.4.7), and the sender is told where it got to. The wording must stay clear
 * of "expired"/"refused" for no-path: failureCause() reads the cause back from the stored text.
 */
export function giveUpCause(hops: readonly { hop: number; agent?: string; event: string }[]): GiveUp {
  const reached = hops.filter((h) => h.hop >= 1);
  if (reached.length === 0) {
    return {
      cause: 'no-path',
      reason: "no path found: nobody in your network trusts this person's agent; ask them for an invitation",
    };
  }
  const last = reached.at(-1)!.hop;
  const agent = reached.filter((h) => h.hop === last && h.agent).at(-1)?.agent;
  const where = agent ? `the agent ${agent} (hop ${last} of its path)` : `hop ${last} of its path`;
  return { cause: 'expired', reason: `expired: it last reached ${where} and was not delivered in time` };
}

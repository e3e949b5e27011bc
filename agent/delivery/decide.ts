import { RefuseReason, RejectReason } from '../reports/report.ts';

/** Paths that may refuse a message as damaged before the sender believes the message itself is bad. */
export const MAX_REJECTING_PATHS = 3;

/**
 * What the sender does when the recipient's agent refuses a message. "Not for me" and "too large"
 * are about the message itself: no other path changes them, so delivery ends. "Undecryptable" and
 * "corrupt" (and a sink failure) are what a relay that alters bytes and re-signs them produces (its
 * hop signature is valid, only the end-to-end checks catch it), so they count against the path and
 * an alternate path is tried; only after MAX_REJECTING_PATHS different paths refused it is the
 * message itself taken to be at fault (e.g. sealed to a key the recipient no longer holds).
 */
export function afterRejection(reason: number, rejectingPathsSoFar: number): 'final' | 'alternate path' {
  if (
    reason === RejectReason.notForMe ||
    reason === RejectReason.tooLarge ||
    reason === RejectReason.firstContactLimit
  )
    return 'final';
  return rejectingPathsSoFar + 1 >= MAX_REJECTING_PATHS ? 'final' : 'alternate path';
}

/**
 * The sentence the sender's status email gives for a refusal (its `Reason:` line). It says
 * "refused": the outbox reads the cause back from that word (agent/queue/policy.ts).
 */
export function rejectionText(reason: number): string {
  switch (reason) {
    case RejectReason.firstContactLimit:
      return "the recipient refused the message (first_contact_limit): you are not the recipient's contact, and its agent takes only a few first messages a day from one sender; send it again tomorrow, or once they have replied";
    case RejectReason.tooLarge:
      return 'the recipient refused the message (too_large): it is larger than its agent takes';
    case RejectReason.notForMe:
      return 'the recipient refused the message (not_for_me): it was not addressed to its agent';
    default:
      return `the recipient refused the message (reason ${reason})`;
  }
}

/**
 * The sentence the sender's "delayed" status email gives when a relay refused the message under a
 * spam limit (a refused report, docs/protocol.md 15.6). It names the code (docs/errors.md) and
 * says that Kith goes on: a refusal is about this hour or this link, not the message.
 */
export function refusalText(reason: number, agent: string | undefined, hop: number): string {
  const who = agent ? `the Kith agent ${agent} (hop ${hop} of its path)` : `hop ${hop} of its path`;
  switch (reason) {
    case RefuseReason.overAllowance:
      return `A relay, ${who}, refused it (ERR_OVER_ALLOWANCE): it takes only so many messages an hour from the agent before it on the path, a limit against spam.`;
    case RefuseReason.firstContactHeld:
      return `A relay, ${who}, refused it for now (ERR_FIRST_CONTACT_HELD): you are not the recipient's contact, and it hands on another first message from the agent before it on the path only once the recipients of the last ones have read them, a limit against spam.`;
    default:
      return `A relay, ${who}, refused it (reason ${reason}).`;
  }
}

/** How many stall timeouts the sender waits after a hop reported that it holds the message. */
export const HELD_PATIENCE = 10;

/**
 * How long to wait for the next report once a hop reported "held". Why longer than a stall: the
 * hop has the message durably and will hand it on (and report "forwarded") as soon as its next hop
 * is back; re-sending at every stall timeout only piles up copies at that hop. Why not forever: the
 * holding hop may itself go away, and then another path is the only way forward.
 */
export function waitAfterHeld(stallTimeoutMs: number): number {
  return stallTimeoutMs * HELD_PATIENCE;
}

/**
 * Which neighbours the sender dials before it picks a path: none while some candidate first hop
 * is linked (that path is usable now); otherwise every candidate not avoided, in the order given
 * (the cached paths' first hops, best first, then the recipient's own agents that trust us). Why:
 * links close when idle and the neighbour keeper redials only every 30 s, so a message written
 * after a quiet spell found every first hop unlinked, failed its first hop and waited for the keeper
 * and then a stall (issue 10: a 1 MiB mail not in bob's INBOX after 60 s). A mail to send is the
 * best reason there is to open the link it needs.
 */
export function firstHopsToDial<T extends string>(
  candidates: readonly T[],
  linked: (agent: T) => boolean,
  avoid: ReadonlySet<T>,
): T[] {
  if (candidates.some(linked)) return [];
  return [...new Set(candidates)].filter((agent) => !avoid.has(agent));
}

/** Bytes of chunks the sender has in flight at most beyond the recipient's last acknowledgement. */
export const MAX_IN_FLIGHT_BYTES = 1024 * 1024;

/**
 * How many chunks may be in flight past the acknowledged ones. Why a byte budget of 1 MiB: relays
 * keep nothing they handed on, so whatever is in flight when a link is cut, a relay restarts or an
 * agent restarts is lost and sent again; the issue allows 1 MiB. Why not less: the window is what
 * keeps every hop of a path busy while acknowledgements travel back (4 chunks of 256 KiB here; on
 * loopback through 3 hops 8 were no faster, see bench/RESULTS.md). `window` (chunks) overrides it.
 */
export function chunksInFlight(chunkSize: number, window?: number): number {
  if (window !== undefined) return Math.max(1, window);
  return Math.max(1, Math.floor(MAX_IN_FLIGHT_BYTES / Math.max(1, chunkSize)));
}

/**
 * The list's rules for mail commands and bouncing subscribers, as pure decisions
 * (docs/protocol.md 17, "Commands" and "Bouncing members"). policy.ts holds the rules for posts.
 */
import type { PostingPolicy } from './policy.ts';

/** A subscription waits this long for its confirmation, then the token is void. */
export const CONFIRM_TTL_MS = 48 * 3_600_000;
/** At most this many confirmation requests to one sender per window; more are not answered. */
export const CONFIRM_LIMIT = 3;
export const CONFIRM_WINDOW_MS = 3_600_000;

/** What the list knows of one `subscribe` request. */
export interface SubscribeFacts {
  policy: PostingPolicy;
  standing: 'moderator' | 'member' | 'contact' | 'stranger';
  /**
   * The request was written by a machine: it carries Auto-Submitted (other than "no"), an X-Loop,
   * or a List-Id (another list's copy).
   */
  automatic: boolean;
  /** Confirmation requests sent to this sender within CONFIRM_WINDOW_MS. */
  recentConfirmations: number;
}

export type SubscribeDecision =
  | { action: 'confirm' }
  | { action: 'already' }
  | { action: 'refuse'; code: 'subscribe-loop' | 'closed'; reason: string; answer: boolean };

/**
 * Order matters. A request written by a machine is a loop in the making (an autoresponder, or
 * another list subscribed to this one, answering each confirmation with a new request): it is
 * dropped unanswered, so the exchange stops at once. A sender asking over and over gets at most
 * CONFIRM_LIMIT confirmations an hour for the same reason. Then: members need nothing; an open
 * list (`contacts`) sends a confirmation token; other lists take members through moderators.
 */
export function decideSubscribe(f: SubscribeFacts): SubscribeDecision {
  if (f.automatic) {
    return {
      action: 'refuse',
      code: 'subscribe-loop',
      reason: 'an automatic message (Auto-Submitted, X-Loop or List-Id) asked to subscribe',
      answer: false,
    };
  }
  if (f.recentConfirmations >= CONFIRM_LIMIT) {
    return {
      action: 'refuse',
      code: 'subscribe-loop',
      reason: `${f.recentConfirmations} confirmation requests in the last hour already`,
      answer: false,
    };
  }
  if (f.standing === 'member' || f.standing === 'moderator') return { action: 'already' };
  if (f.policy === 'contacts' && f.standing === 'contact') return { action: 'confirm' };
  return {
    action: 'refuse',
    code: 'closed',
    reason: 'this list takes new members only through its moderators',
    answer: true,
  };
}

/** What a confirmation reply names, and who sent it. */
export interface ConfirmFacts {
  token?: { fingerprint: string; createdAt: number; usedAt?: number };
  sender: string;
  now: number;
}

export type ConfirmDecision =
  | { action: 'subscribe' }
  | {
      action: 'refuse';
      code: 'unknown-token' | 'forged-confirmation' | 'expired' | 'used';
      reason: string;
      answer: boolean;
    };

/**
 * A token confirms only for the entity it was sent to: the reply is signed, so a confirmation
 * from anyone else is forged (someone who saw the token trying to subscribe its owner, or
 * itself under the owner's request): dropped unanswered, with the reason in the log.
 */
export function decideConfirm(f: ConfirmFacts): ConfirmDecision {
  if (!f.token) {
    return { action: 'refuse', code: 'unknown-token', reason: 'no such confirmation token', answer: true };
  }
  if (f.token.fingerprint !== f.sender) {
    return {
      action: 'refuse',
      code: 'forged-confirmation',
      reason: 'the token was sent to another entity',
      answer: false,
    };
  }
  if (f.token.usedAt !== undefined) {
    return { action: 'refuse', code: 'used', reason: 'the token has been used already', answer: false };
  }
  if (f.now - f.token.createdAt > CONFIRM_TTL_MS) {
    return {
      action: 'refuse',
      code: 'expired',
      reason: 'the confirmation came more than 48 hours after the request',
      answer: true,
    };
  }
  return { action: 'subscribe' };
}

/** Failed copies of this many posts in a row make a member a bouncing one… */
export const BOUNCE_POSTS = 3;
/** …once the first of them failed at least this long before the last one. */
export const BOUNCE_SPAN_MS = 72 * 3_600_000;

/**
 * The bounce rule: a member is removed when their copies of BOUNCE_POSTS posts in a row failed
 * and those failures span at least BOUNCE_SPAN_MS; a delivered copy starts the count again.
 * Why both: a "failed" copy in Kith means the delivery engine already retried for its whole
 * window, but several posts sent during one outage fail together, so a count alone would remove
 * someone for a single bad afternoon; three days of nothing but failures is a subscriber who is
 * gone (mlmmj's default is five days of bounces, Mailman's a score over days). The removed
 * member gets no notice (nothing reaches them); the moderators do, and the list's log says why.
 */
export function isBouncing(failures: number, firstFailureAt: number, lastFailureAt: number): boolean {
  return failures >= BOUNCE_POSTS && lastFailureAt - firstFailureAt >= BOUNCE_SPAN_MS;
}

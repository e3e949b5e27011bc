/**
 * Who may post to a list, and what becomes of a post: pure decisions, so that every rule is
 * readable in one place and tested without a network (docs/protocol.md, "Lists").
 */

/** How a list accepts posts. */
export type PostingPolicy =
  /** Members post; everyone else is refused. */
  | 'members'
  /** Moderators post at once; members' posts wait for a moderator's approval. */
  | 'moderated'
  /** Only moderators post (a newsletter); members only receive. */
  | 'announce'
  /** Members and the list's contacts post (an open list within the web of trust). */
  | 'contacts';

export const POSTING_POLICIES: readonly PostingPolicy[] = ['members', 'moderated', 'announce', 'contacts'];

export function isPostingPolicy(value: string): value is PostingPolicy {
  return (POSTING_POLICIES as readonly string[]).includes(value);
}

/** What the list needs to decide on one post. */
export interface PostFacts {
  policy: PostingPolicy;
  /** A chat room: no moderation delay (a moderated room lets members post at once). */
  chat: boolean;
  /** Largest post the list distributes, in bytes. */
  maxBytes: number;
  size: number;
  /** The engine verified the poster's OpenPGP signature against a key the list holds. */
  verified: boolean;
  /** The poster's standing with the list. */
  poster: 'moderator' | 'member' | 'contact' | 'stranger';
  /** The post already went through this list (its X-Loop names us) or was sent by the list itself. */
  looped: boolean;
}

/** Stable reasons, logged by the list and named in the answer to the poster. */
export type RefusalCode =
  'loop' | 'unverified' | 'too-large' | 'not-a-member' | 'announce-only' | 'not-a-contact';

export type PostDecision =
  | { action: 'distribute' }
  | { action: 'hold'; reason: string }
  | {
      action: 'refuse';
      code: RefusalCode;
      reason: string;
      /**
       * Whether the poster gets an answer. Never for a loop (answering would feed it) nor for an
       * unverified post (the claimed sender may be forged: answering would make the list a
       * reflector); those are dropped with the reason in the list's log.
       */
      answer: boolean;
    };

/** The decision on one post. Order matters: loops and forgeries first, then size, then policy. */
export function decidePost(f: PostFacts): PostDecision {
  if (f.looped) {
    return {
      action: 'refuse',
      code: 'loop',
      reason: 'the post already went through this list',
      answer: false,
    };
  }
  if (!f.verified) {
    return {
      action: 'refuse',
      code: 'unverified',
      reason: "the poster's signature did not verify against a key the list holds",
      answer: false,
    };
  }
  if (f.size > f.maxBytes) {
    return {
      action: 'refuse',
      code: 'too-large',
      reason: `the post is ${f.size} bytes, larger than this list's limit of ${f.maxBytes} bytes`,
      answer: true,
    };
  }
  const isMember = f.poster === 'member' || f.poster === 'moderator';
  switch (f.policy) {
    case 'announce':
      if (f.poster === 'moderator') return { action: 'distribute' };
      return {
        action: 'refuse',
        code: 'announce-only',
        reason: 'only the moderators of this list post to it',
        answer: true,
      };
    case 'moderated':
      if (f.poster === 'moderator' || (f.chat && isMember)) return { action: 'distribute' };
      if (isMember) return { action: 'hold', reason: 'posts to this list wait for a moderator' };
      return notAMember();
    case 'contacts':
      if (isMember || f.poster === 'contact') return { action: 'distribute' };
      return {
        action: 'refuse',
        code: 'not-a-contact',
        reason: 'only members and contacts of this list post to it',
        answer: true,
      };
    case 'members':
    default:
      return isMember ? { action: 'distribute' } : notAMember();
  }
}

function notAMember(): PostDecision {
  return {
    action: 'refuse',
    code: 'not-a-member',
    reason: 'you are not a member of this list',
    answer: true,
  };
}

/** A copy's state as the list tracks it, from the delivery events of its own outbox. */
export type CopyState = 'pending' | 'delayed' | 'delivered' | 'failed';

/** Counts of a post's copies, for the one summary the poster gets. */
export interface CopyCounts {
  delivered: number;
  delayed: number;
  failed: number;
  pending: number;
}

export function countCopies(states: readonly CopyState[]): CopyCounts {
  const counts: CopyCounts = { delivered: 0, delayed: 0, failed: 0, pending: 0 };
  for (const s of states) counts[s] += 1;
  return counts;
}

/**
 * Whether the poster's summary is due now. Once every copy is final (delivered or failed), or
 * when the summary deadline has passed with copies still under way (they count as delayed).
 * One summary per post, never N status emails: after it, later outcomes show in `kith list track`.
 */
export function summaryDue(counts: CopyCounts, postedAt: number, now: number, deadlineMs: number): boolean {
  if (counts.pending + counts.delayed === 0) return true;
  return now - postedAt >= deadlineMs;
}

/**
 * What the bridge decides, as pure functions (docs/protocol.md 17.6): whether a message read from
 * the mailbox subscribed to the outside list enters the network, and when a post that failed to go
 * out is tried again.
 */
import { listId } from '../headers.ts';
import type { Direction } from './store.ts';

/** What the bridge knows of one message read from the outside list's mailbox. */
export interface InboundFacts {
  /** The bridge's own address (the one subscribed to the outside list). */
  bridgeAddress: string;
  /** The outside list's posting address. */
  listAddress: string;
  /** Addresses in From: (lower case). */
  from: string[];
  /** Addresses in To: and Cc: (lower case). */
  recipients: string[];
  /** X-Loop values. */
  xLoop: string[];
  /** List-Id and List-Post values. */
  listFields: string[];
  /** Whether the Message-ID crossed the bridge before, and which way. */
  seen?: Direction;
  size: number;
  maxBytes: number;
}

export type InboundReason =
  'loop-x-loop' | 'loop-own-post' | 'duplicate' | 'loop-own-address' | 'not-a-list-post' | 'too-large';

export type InboundDecision = { action: 'bring-in' } | { action: 'drop'; reason: InboundReason };

/**
 * Order matters: loops first (a network member's post that the outside list sent back to our
 * mailbox carries our X-Loop, or at least its Message-ID is remembered as gone 'out'; entering it
 * again would give every member a second copy and send it out again, for ever), then what is not a
 * post of the list at all (the outside list manager's own mail to the subscribed address:
 * confirmations, welcome texts, bounce probes — nothing for the members), then size.
 */
export function decideInbound(f: InboundFacts): InboundDecision {
  const bridge = f.bridgeAddress.toLowerCase();
  if (f.xLoop.some((v) => v.trim().toLowerCase() === bridge)) return drop('loop-x-loop');
  if (f.seen === 'out') return drop('loop-own-post');
  if (f.seen === 'in') return drop('duplicate');
  if (f.from.includes(bridge)) return drop('loop-own-address');
  const list = f.listAddress.toLowerCase();
  const id = `<${listId(list)}>`;
  const named =
    f.recipients.includes(list) ||
    f.listFields.some((v) => v.toLowerCase().includes(id) || v.toLowerCase().includes(`mailto:${list}`));
  if (!named) return drop('not-a-list-post');
  if (f.size > f.maxBytes) return drop('too-large');
  return { action: 'bring-in' };
}

function drop(reason: InboundReason): InboundDecision {
  return { action: 'drop', reason };
}

/** Attempts a post gets at the outside relay before it is given up (~6 h of backoff). */
export const OUTBOUND_ATTEMPTS = 12;

/**
 * When a post that the relay did not take is tried again, or undefined to give up. A permanent
 * refusal (5xx: the relay or the outside list will never take it) gives up at once; anything else
 * (relay down, 4xx) waits 30 s, doubling up to an hour, for OUTBOUND_ATTEMPTS attempts.
 */
export function outboundRetryAt(
  attempts: number,
  responseCode: number | undefined,
  now: number,
): number | undefined {
  if (responseCode !== undefined && responseCode >= 500 && responseCode < 600) return undefined;
  if (attempts + 1 >= OUTBOUND_ATTEMPTS) return undefined;
  return now + Math.min(3_600_000, 30_000 * 2 ** attempts);
}

import { RejectReason } from '../reports/report.ts';

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
  if (reason === RejectReason.notForMe || reason === RejectReason.tooLarge) return 'final';
  return rejectingPathsSoFar + 1 >= MAX_REJECTING_PATHS ? 'final' : 'alternate path';
}

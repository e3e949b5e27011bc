import type { MailboxInfo, MailChange } from '../mailbox/types.ts';
import { compressSet, selectFromSorted, type SequenceSet } from './sequence.ts';
import { formatFlags } from './format.ts';

/**
 * The selected mailbox as one session sees it: its own sequence-number ↔ UID snapshot and
 * the changes it has not told its client about yet. Other sessions' changes only become visible
 * when they are announced (EXISTS, EXPUNGE, FETCH FLAGS), so sequence numbers never shift
 * under a client's feet.
 */
export class SelectedMailbox {
  /** UIDs in sequence order (index = seq - 1). */
  readonly uids: number[];
  /** Flags and MODSEQ per UID, as last announced or fetched. */
  readonly flags = new Map<number, string[]>();
  readonly modseqs = new Map<number, number>();
  private pending: MailChange[] = [];

  constructor(
    /** The mailbox selected. */
    readonly mailbox: MailboxInfo,
    /** EXAMINE: no flag changes, no expunges. */
    readonly readOnly: boolean,
    entries: readonly { uid: number; flags: string[]; modseq: number }[],
    /** The connection this snapshot belongs to (changes it caused are not echoed). */
    private readonly origin: unknown,
  ) {
    this.uids = entries.map((e) => e.uid);
    for (const e of entries) {
      this.flags.set(e.uid, e.flags);
      this.modseqs.set(e.uid, e.modseq);
    }
  }

  /** Queues a change from the store if it concerns this mailbox. */
  observe(change: MailChange): void {
    if ('mailboxId' in change && change.mailboxId === this.mailbox.id) this.pending.push(change);
  }

  /** Whether the mailbox was deleted under this session. */
  get deleted(): boolean {
    return this.pending.some((c) => c.kind === 'mailbox-deleted');
  }

  /** Sequence number of a UID (1-based) or 0. */
  seqOf(uid: number): number {
    let lo = 0;
    let hi = this.uids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.uids[mid]!;
      if (v === uid) return mid + 1;
      if (v < uid) lo = mid + 1;
      else hi = mid - 1;
    }
    return 0;
  }

  /** The messages a sequence set names: [seq, uid] pairs in sequence order. */
  resolve(set: SequenceSet, byUid: boolean): [number, number][] {
    if (byUid) return selectFromSorted(set, this.uids).map((uid) => [this.seqOf(uid), uid]);
    const n = this.uids.length;
    const out: [number, number][] = [];
    if (n === 0) return out;
    const seen = new Uint8Array(n + 1);
    for (const [a, b] of set) {
      const lo = Math.min(a === Infinity ? n : a, b === Infinity ? n : b);
      const hi = Math.min(Math.max(a === Infinity ? n : a, b === Infinity ? n : b), n);
      for (let s = lo; s <= hi; s++) seen[s] = 1;
    }
    for (let s = 1; s <= n; s++) if (seen[s]) out.push([s, this.uids[s - 1]!]);
    return out;
  }

  /**
   * Turns queued changes into untagged responses and applies them to the snapshot. When
   * expunges may not be announced (during FETCH, STORE, SEARCH) it stops before the first one.
   */
  flush(allowExpunge: boolean, modes: { modseq: boolean; vanished: boolean }): string[] {
    const withModseq = modes.modseq;
    const out: string[] = [];
    let announced = this.uids.length;
    let i = 0;
    for (; i < this.pending.length; i++) {
      const c = this.pending[i]!;
      if (c.kind === 'exists') {
        if (this.seqOf(c.uid) === 0 && (this.uids.length === 0 || c.uid > this.uids[this.uids.length - 1]!)) {
          this.uids.push(c.uid);
          this.flags.set(c.uid, c.flags);
          this.modseqs.set(c.uid, c.modseq);
        }
      } else if (c.kind === 'expunge') {
        if (!allowExpunge) break;
        const gone: number[] = [];
        for (const uid of c.uids) {
          const seq = this.seqOf(uid);
          if (seq === 0) continue;
          this.uids.splice(seq - 1, 1);
          this.flags.delete(uid);
          this.modseqs.delete(uid);
          if (seq <= announced) {
            // With QRESYNC, expunges are told as UIDs in one VANISHED (RFC 7162 3.2.10).
            if (modes.vanished) gone.push(uid);
            else out.push(`* ${seq} EXPUNGE`);
            announced--;
          }
        }
        if (gone.length) out.push(`* VANISHED ${compressSet(gone.sort((a, b) => a - b))}`);
      } else if (c.kind === 'flags') {
        const seq = this.seqOf(c.uid);
        if (seq === 0) continue;
        this.flags.set(c.uid, c.flags);
        this.modseqs.set(c.uid, c.modseq);
        if (c.origin !== this.origin && seq <= announced) {
          out.push(
            `* ${seq} FETCH (UID ${c.uid} FLAGS ${formatFlags(c.flags)}${withModseq ? ` MODSEQ (${c.modseq})` : ''})`,
          );
        }
      }
    }
    this.pending = this.pending.slice(i);
    if (this.uids.length > announced) {
      out.push(`* ${this.uids.length} EXISTS`);
    }
    return out;
  }
}

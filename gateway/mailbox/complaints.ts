import { complaintAction, readAndKept, type ComplaintTrigger } from './decisions.ts';
import type { MailStatements } from './statements.ts';
import type { ComplaintCandidate, ComplaintEvent } from './types.ts';

// Complaint candidates (docs/protocol.md 15.2): the Junk moves, flag changes and reads of a
// message that make, keep or withdraw a complaint about it (decided by decisions.ts
// complaintAction and readAndKept), recorded in mbx_complaints.

/** A row of mbx_complaints. */
interface ComplaintRow {
  id: number;
  kith_id: string | null;
  mailbox: string;
  uid: number;
  created: number;
}

// Runs after every arrival or flag change of a copy, inside the same transaction.
export function reviewComplaint(
  q: MailStatements,
  messageId: number,
  trigger: ComplaintTrigger,
  pending: ComplaintEvent[],
): void {
  const active = q.activeComplaint.get(messageId) as ComplaintRow | undefined;
  const action = complaintAction(trigger, active !== undefined);
  if (action === 'record') {
    const where = q.junkCopy.get(messageId) as { name: string; uid: number };
    const kithId = (q.kithIdOf.get(messageId) as { kith_id: string | null }).kith_id;
    const now = Date.now();
    const { id } = q.insertComplaint.get(messageId, kithId, where.name, where.uid, now) as { id: number };
    pending.push({
      kind: 'recorded',
      candidate: { id, kithId, mailbox: where.name, uid: where.uid, at: new Date(now) },
    });
  } else if (action === 'keep' && readAndKept(trigger, active !== undefined)) {
    const kithId = (q.kithIdOf.get(messageId) as { kith_id: string | null }).kith_id;
    if (kithId)
      pending.push({ kind: 'seen', candidate: { id: 0, kithId, mailbox: '', uid: 0, at: new Date() } });
  } else if (action === 'withdraw' && active) {
    q.withdrawComplaint.run(Date.now(), active.id);
    pending.push({
      kind: 'withdrawn',
      candidate: {
        id: active.id,
        kithId: active.kith_id,
        mailbox: active.mailbox,
        uid: active.uid,
        at: new Date(active.created),
      },
    });
  }
}

/** The complaints that stand (not withdrawn), oldest first. */
export function complaintCandidates(q: MailStatements): ComplaintCandidate[] {
  return (q.complaints.all() as ComplaintRow[]).map((r) => ({
    id: r.id,
    kithId: r.kith_id,
    mailbox: r.mailbox,
    uid: r.uid,
    at: new Date(r.created),
  }));
}

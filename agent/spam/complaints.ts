import type { AgentId } from '../../common/ids.ts';
import { publicFromAgentId } from '../onion/keys.ts';
import type { HopRecord } from '../delivery/store.ts';
import { verifyHopProof } from '../delivery/proof.ts';
import { clearsAtOnce, complaintCounts } from './decisions.ts';
import type { ComplaintRow } from './store.ts';
import {
  decodeComplaintFrame,
  encodeComplaintFrame,
  StatementKind,
  verifyComplaintHop,
  verifyStatement,
  type ComplaintFrame,
  type Statement,
} from './wire.ts';
import { keyOf, SKEW_MS, type SpamContext } from './context.ts';
import type { Cuts } from './cuts.ts';

/**
 * Complaints, withdrawals and *seen* verdicts arriving at a hop (docs/protocol.md 15.2, 15.7):
 * checked in the order of 15.2's table, counted against the predecessor from hop memory, stored
 * with the frame and its proof, and handed on upstream re-signed.
 */
export class ComplaintIntake {
  constructor(
    private readonly ctx: SpamContext,
    private readonly cuts: Cuts,
    /** Judges a neighbour again (agent/spam/judge.ts). */
    private readonly evaluate: (agent: AgentId) => void,
    /** A complaint about a list's copy that ended here changed (agent/spam/recipient.ts carry). */
    private readonly carriedChanged: (origin: ComplaintRow) => void,
  ) {}

  async onComplaint(from: AgentId, frame: Buffer): Promise<void> {
    const { ctx } = this;
    const { store, keys } = ctx.deps;
    let f: ComplaintFrame;
    try {
      f = decodeComplaintFrame(frame);
    } catch {
      return ctx.refuse(from, 'complaint_malformed');
    }
    const s = f.statement;
    if (!verifyStatement(ctx.verifier, s) || !verifyComplaintHop(ctx.verifier, from, keys.signPublic, f))
      return ctx.refuse(from, 'complaint_forged');
    const now = ctx.now();
    if (s.at > now + SKEW_MS) return ctx.refuse(from, 'complaint_future');
    if (s.kind === StatementKind.seen) return this.onSeen(from, f, s);
    const recipient = s.recipient.toString('hex');
    const existing = store.complaint(recipient, s.complaintId);
    const want = s.kind === StatementKind.complaint ? 'active' : 'withdrawn';
    if (existing) {
      if (s.at <= existing.lastAt) return ctx.refuse(from, 'complaint_replay');
      if (existing.linkOut !== f.link || existing.successor !== from)
        return ctx.refuse(from, 'complaint_mismatch');
      const row = {
        ...existing,
        state: want as ComplaintRow['state'],
        lastAt: s.at,
        frame: Buffer.from(frame),
      };
      store.putComplaint(row);
      ctx.count(s.kind === StatementKind.complaint ? 'complaints_relayed' : 'withdrawals_relayed');
      sendStatement(ctx, row, s);
      if (row.predecessor && row.counted) this.evaluate(row.predecessor);
      if (!row.predecessor) this.carriedChanged(row);
      return;
    }
    if (s.kind === StatementKind.withdrawal) return ctx.refuse(from, 'complaint_unknown');
    if (ctx.core?.ownComplaint(f.link)) {
      // We sent the message: nobody upstream to tell. Kept so that a replay is recognised.
      store.putComplaint(originRow(recipient, s, f.link, from, frame));
      ctx.count('complaints_received');
      return;
    }
    const hop = ctx.core?.hopByOut(f.link);
    if (!hop || hop.to !== from) return ctx.refuse(from, 'complaint_unknown');
    if (store.complaintOnLink(f.link)) return ctx.refuse(from, 'complaint_duplicate');
    const proven = hasProof(hop);
    const credit = ctx.deps.credit;
    const first = credit?.isFirstContact(f.link) === true;
    if (first) credit!.verdict(f.link, false);
    // With the credit hops know first contacts: a contact's complaints count once per recipient.
    const counts =
      !credit ||
      complaintCounts(
        first,
        ctx
          .openAgainst(hop.from, now)
          .filter((r) => r.recipient === recipient && !credit.isFirstContact(r.linkOut ?? r.linkIn)).length,
      );
    if (!counts) ctx.count('complaint_contact_again');
    if (!proven) {
      ctx.count('complaint_unproven');
      ctx.deps.logger.info({ from, neighbour: hop.from }, 'complaint not counted: no verifying hop proof');
    }
    const cutOff = clearsAtOnce(ctx.isCutOff(hop.from));
    const row: ComplaintRow = {
      recipient,
      complaintId: s.complaintId,
      messageId: null,
      linkOut: f.link,
      successor: from,
      linkIn: hop.inId,
      predecessor: hop.from,
      state: 'active',
      lastAt: s.at,
      counted: proven && counts,
      countedAt: now,
      clearedAt: null,
      cutId: null,
      // Hop memory lasts hopMemoryMs from when the packet came (longer only for a packet valid longer).
      packetAt: Math.min(now, hop.expiresAt - ctx.deps.hopMemoryMs),
      frame: Buffer.from(frame),
      proof: hop.proof && {
        digest: Buffer.from(hop.proof.digest),
        signature: Buffer.from(hop.proof.signature),
      },
    };
    store.putComplaint(row);
    if (row.counted) ctx.count('complaints_counted');
    ctx.count('complaints_relayed');
    ctx.emit({ kind: 'counted', against: hop.from, proven });
    sendStatement(ctx, row, s);
    // The source is cut off here already: clear it downstream at once (the clearing rule).
    if (cutOff) this.cuts.sendStanding(row, hop.from);
    else if (row.counted) this.evaluate(hop.from);
  }

  /**
   * A *seen* verdict (15.7) from `from` about a first contact we handed it: release its credit, add
   * a good verdict for the neighbour that handed it to us, and pass it on, re-signed, as complaints
   * travel. A verdict given already (a replay) or about a packet that was no first contact here is
   * refused.
   */
  private onSeen(from: AgentId, f: ComplaintFrame, s: Statement): void {
    const { ctx } = this;
    if (ctx.core?.ownComplaint(f.link)) return ctx.count('verdicts_received');
    const hop = ctx.core?.hopByOut(f.link);
    if (!hop || hop.to !== from) return ctx.refuse(from, 'verdict_unknown');
    if (!ctx.deps.credit?.verdict(f.link, true)) return ctx.refuse(from, 'verdict_replay');
    ctx.count('verdicts_relayed');
    ctx.emit({ kind: 'verdict', from: hop.from, good: true });
    sendStatement(ctx, { predecessor: hop.from, linkIn: hop.inId }, s);
  }
}

/** Hands a statement on to the predecessor, re-signed for it, under the link id it knows. */
export function sendStatement(
  ctx: SpamContext,
  row: Pick<ComplaintRow, 'predecessor' | 'linkIn'>,
  s: Statement,
): void {
  if (!row.predecessor || !row.linkIn) return;
  const receiver = keyOf(row.predecessor);
  if (!receiver) return;
  const out = encodeComplaintFrame(ctx.deps.keys, receiver, row.linkIn, s);
  ctx.deps.transport.send(row.predecessor, out).catch(() => ctx.count('complaint_send_failed'));
}

/** The row of a complaint about a packet this agent sent: it ends here. */
function originRow(
  recipient: string,
  s: Statement,
  link: string,
  from: AgentId,
  frame: Buffer,
): ComplaintRow {
  return {
    recipient,
    complaintId: s.complaintId,
    messageId: null,
    linkOut: link,
    successor: from,
    linkIn: null,
    predecessor: null,
    state: s.kind === StatementKind.complaint ? 'active' : 'withdrawn',
    lastAt: s.at,
    counted: false,
    countedAt: s.at,
    clearedAt: null,
    cutId: null,
    frame: Buffer.from(frame),
    proof: null,
  };
}

/** True if the hop record proves its neighbour handed us the packet (checked again, not trusted). */
function hasProof(hop: HopRecord): boolean {
  try {
    return verifyHopProof(hop, publicFromAgentId(hop.from));
  } catch {
    return false;
  }
}

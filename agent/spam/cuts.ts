import { createHash } from 'node:crypto';
import type { AgentId } from '../../common/ids.ts';
import { addDecayed, relayCutEpoch } from './decisions.ts';
import type { ComplaintRow } from './store.ts';
import { decodeCutFrame, encodeCutFrame, verifyCut } from './wire.ts';
import { keyOf, SKEW_MS, type SpamContext } from './context.ts';
import type { Neighbours } from './neighbours.ts';

/**
 * Cut notices (docs/protocol.md 15.3): "the source of this complaint is cut off". A hop that cuts
 * its predecessor off sends one forward along each complaint's path; a hop receiving one clears
 * its complaint against the neighbour that sent it (the clearing rule), passes it on and judges
 * that neighbour again.
 */
export class Cuts {
  constructor(
    private readonly ctx: SpamContext,
    private readonly neighbours: Neighbours,
    /** Judges a neighbour again (agent/spam/judge.ts). */
    private readonly evaluate: (agent: AgentId) => void,
  ) {}

  async onCut(from: AgentId, frame: Buffer): Promise<void> {
    const { ctx } = this;
    const { store, keys, policy } = ctx.deps;
    let c;
    try {
      c = decodeCutFrame(frame);
    } catch {
      return ctx.refuse(from, 'cut_malformed');
    }
    if (!verifyCut(ctx.verifier, from, keys.signPublic, c)) return ctx.refuse(from, 'cut_forged');
    const row = store.complaint(c.recipient.toString('hex'), c.complaintId);
    if (!row || row.predecessor !== from) return ctx.refuse(from, 'cut_unknown');
    if (row.clearedAt !== null) return ctx.count('cut_duplicate');
    const now = ctx.now();
    // A cut clears only complaints about packets handed on before it: once an honest relay cut
    // its source off, nothing it hands on later came from that source. So a made-up cut buys a
    // forger only what it sent before it, and clearing again later needs another act (cut id),
    // which maxCuts counts.
    if (row.packetAt !== null && row.packetAt !== undefined && row.packetAt > c.at + SKEW_MS)
      return ctx.refuse(from, 'cut_before_packet');
    store.putComplaint({ ...row, clearedAt: now, cutId: c.cutId });
    if (store.addCut(from, c.cutId, now)) {
      const n = this.neighbours.row(from);
      store.putNeighbour({ ...n, cuts: addDecayed(n.cuts, 1, now, policy.halfLifeMs) });
    }
    ctx.count('cuts_received');
    ctx.emit({ kind: 'cleared', against: from });
    // Handed on as our own act for this predecessor (relayCutEpoch says why), not as its act.
    this.send(row, this.actId(from, now), c.at);
    this.evaluate(from);
  }

  /** Tells the successor that the source of this complaint is cut off (no-op at the recipient). */
  send(row: ComplaintRow, cutId: string, at: number): void {
    const { ctx } = this;
    if (!row.successor) {
      // Our own complaint as a list (carry): the cut goes on to the copies' complaints it carries.
      if (row.recipient === ctx.self)
        for (const origin of ctx.deps.store.carriedFor(row.complaintId)) this.send(origin, cutId, at);
      return;
    }
    const receiver = keyOf(row.successor);
    if (!receiver) return;
    const recipient = Buffer.from(row.recipient, 'hex');
    const out = encodeCutFrame(ctx.deps.keys, receiver, {
      recipient,
      complaintId: row.complaintId,
      cutId,
      at,
    });
    ctx.deps.transport.send(row.successor, out).catch(() => ctx.count('cut_send_failed'));
    ctx.count('cuts_sent');
  }

  /**
   * `predecessor` is cut off here already (revoked): the complaint clears downstream at once (the
   * clearing rule), under our revocation's cut id and time.
   */
  sendStanding(row: ComplaintRow, predecessor: AgentId): void {
    const { store } = this.ctx.deps;
    this.send(
      row,
      this.lastCutId(predecessor) ?? this.actId(predecessor, this.ctx.now()),
      store.neighbour(predecessor)?.revokedAt ?? this.ctx.now(),
    );
  }

  /**
   * Our cut act for everything that came through `predecessor` in this half-life: suspending it,
   * revoking it and passing on its own cut notices are one act downstream (relayCutEpoch).
   */
  actId(predecessor: AgentId, now: number): string {
    return createHash('sha256')
      .update('kith-cut-act-v1')
      .update(this.ctx.deps.keys.id)
      .update(predecessor)
      .update(String(relayCutEpoch(now, this.ctx.deps.policy)))
      .digest()
      .subarray(0, 16)
      .toString('hex');
  }

  /** The cut id of our revocation of `agent` (kept in its detail line). */
  private lastCutId(agent: AgentId): string | undefined {
    return /cut ([0-9a-f]{32})$/.exec(this.ctx.deps.store.neighbour(agent)?.detail ?? '')?.[1];
  }
}

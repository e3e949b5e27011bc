import type { AgentId } from '../../common/ids.ts';
import {
  complaintWeight,
  decayedValue,
  evidenceWeight,
  judgeNeighbour,
  type NeighbourFacts,
  type NeighbourVerdict,
} from './decisions.ts';
import type { SpamContext } from './context.ts';
import type { Neighbours } from './neighbours.ts';
import type { Cuts } from './cuts.ts';
import type { Revocations } from './revocations.ts';

/**
 * Judging a neighbour (docs/protocol.md 15.4): gathers the facts about it from the store and the
 * traffic counted in memory, asks the pure decision (judgeNeighbour, agent/spam/decisions.ts) and
 * acts on it: suspends (and tells the hops downstream), waits for the settle time, lifts, or
 * revokes.
 */
export class Judge {
  private readonly timers = new Map<AgentId, NodeJS.Timeout>();

  constructor(
    private readonly ctx: SpamContext,
    private readonly neighbours: Neighbours,
    private readonly cuts: Cuts,
    private readonly revocations: Revocations,
  ) {}

  /** The facts about a neighbour now (for the decision, `kith contacts`, tests). */
  facts(agent: AgentId): NeighbourFacts {
    const { ctx } = this;
    const { store, policy } = ctx.deps;
    const now = ctx.now();
    const n = this.neighbours.row(agent);
    const open = ctx
      .openAgainst(agent, now)
      .reduce((sum, r) => sum + complaintWeight(r.countedAt, now, policy.halfLifeMs), 0);
    const credit = ctx.deps.credit;
    const openFirstContact = credit
      ? ctx
          .openAgainst(agent, now)
          .filter((r) => credit.isFirstContact(r.linkOut ?? r.linkIn))
          .reduce((sum, r) => sum + complaintWeight(r.countedAt, now, policy.halfLifeMs), 0)
      : undefined;
    // Neighbours' revocations of it with their evidence (15.5): each revoker's weight, decayed from
    // when it revoked (never from a future time: its clock is its word).
    const evidence = store
      .evidenceAgainst(agent, ctx.deps.keys.id)
      .reduce(
        (sum, r) =>
          sum +
          evidenceWeight(r.verified, policy) * complaintWeight(Math.min(r.at, now), now, policy.halfLifeMs),
        0,
      );
    return {
      openComplaints: open,
      ...(evidence > 0 ? { evidence } : {}),
      ...(credit ? { firstContactGood: credit.good(agent), openFirstContact } : {}),
      traffic: decayedValue(n.traffic, now, policy.halfLifeMs),
      lifetimeOpen: store.openCount(agent),
      lifetimeTraffic: n.totalTraffic,
      cuts: decayedValue(n.cuts, now, policy.halfLifeMs),
      suspendedAt: n.suspendedAt ?? undefined,
      revoked: n.revokedAt !== null,
    };
  }

  /** Decides about a neighbour and acts on it. */
  evaluate(agent: AgentId): NeighbourVerdict {
    const { ctx } = this;
    const { store, policy, logger } = ctx.deps;
    const now = ctx.now();
    const verdict = judgeNeighbour(this.facts(agent), now, policy);
    const n = this.neighbours.row(agent);
    switch (verdict.action) {
      case 'suspend':
        store.putNeighbour({ ...n, suspendedAt: now, reason: 'suspended', detail: verdict.reason });
        this.neighbours.refuse(agent);
        // Its packets are refused from now on, so the source is cut off here: tell the hops
        // downstream at once. Why not only at revocation: they suspended us a moment earlier (the
        // complaint reached them first) and their settle time would end before ours, revoking an
        // honest relay before our cut notice came (15.3).
        for (const row of ctx.openAgainst(agent, now)) this.cuts.send(row, this.cuts.actId(agent, now), now);
        logger.warn({ neighbour: agent, why: verdict.reason }, 'neighbour suspended for spam');
        ctx.emit({ kind: 'suspended', agent, reason: verdict.reason });
        this.schedule(agent, now + policy.settleMs);
        break;
      case 'wait':
        this.schedule(agent, verdict.until);
        break;
      case 'lift':
        store.putNeighbour({ ...n, suspendedAt: null, reason: null, detail: null });
        this.neighbours.accept(agent);
        logger.info({ neighbour: agent, why: verdict.reason }, 'neighbour no longer suspended');
        ctx.emit({ kind: 'lifted', agent });
        break;
      case 'revoke':
        this.revocations.revoke(agent, n, verdict, now);
        break;
      case 'none':
        break;
    }
    return verdict;
  }

  /** Judges every suspended neighbour again (at start: settle times that ended while down). */
  settle(): void {
    for (const n of this.ctx.deps.store.suspended()) this.evaluate(n.agent);
  }

  stop(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private schedule(agent: AgentId, at: number): void {
    if (this.timers.has(agent)) return;
    const t = setTimeout(
      () => {
        this.timers.delete(agent);
        this.evaluate(agent);
      },
      Math.max(0, at - this.ctx.now()) + 1,
    );
    t.unref();
    this.timers.set(agent, t);
  }
}

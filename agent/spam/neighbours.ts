import type { AgentId } from '../../common/ids.ts';
import { addDecayed, decayedValue, type Decayed } from './decisions.ts';
import type { NeighbourRow } from './store.ts';
import type { SpamContext } from './context.ts';

/**
 * What spam control knows of each neighbour between flushes: the traffic it handed on (counted in
 * memory, written every 30 s: a crash loses at most that much traffic, which only lowers thresholds
 * a little) and who is refused now (suspended, or revoked until the trust store has it).
 */
export class Neighbours {
  private readonly traffic = new Map<AgentId, { decayed: Decayed; total: number }>();
  private readonly dirty = new Set<AgentId>();
  private readonly refused = new Set<AgentId>();

  constructor(private readonly ctx: SpamContext) {
    for (const n of ctx.deps.store.neighbours()) {
      this.traffic.set(n.agent, { decayed: n.traffic, total: n.totalTraffic });
      if (n.suspendedAt !== null && n.revokedAt === null) this.refused.add(n.agent);
    }
  }

  /** A packet from `from` passed every check (traffic for the threshold). */
  onPacket(from: AgentId): void {
    const t = this.traffic.get(from);
    const decayed = addDecayed(t?.decayed, 1, this.ctx.now(), this.ctx.deps.policy.halfLifeMs);
    this.traffic.set(from, { decayed, total: (t?.total ?? 0) + 1 });
    this.dirty.add(from);
  }

  /** The decayed packets a neighbour handed on so far. */
  trafficOf(agent: AgentId): number {
    const t = this.traffic.get(agent)?.decayed ?? this.ctx.deps.store.neighbour(agent)?.traffic;
    return t ? decayedValue(t, this.ctx.now(), this.ctx.deps.policy.halfLifeMs) : 0;
  }

  refuses(from: AgentId): boolean {
    return this.refused.has(from);
  }

  /** Packets from it are refused from now on (suspended, or revoked until the trust store has it). */
  refuse(agent: AgentId): void {
    this.refused.add(agent);
  }

  accept(agent: AgentId): void {
    this.refused.delete(agent);
  }

  /** The stored row of a neighbour with the traffic counted in memory since the last flush. */
  row(agent: AgentId): NeighbourRow {
    const stored = this.ctx.deps.store.neighbour(agent);
    const t = this.traffic.get(agent);
    return {
      agent,
      cuts: { value: 0, at: 0 },
      suspendedAt: null,
      revokedAt: null,
      reason: null,
      detail: null,
      ...stored,
      traffic: t?.decayed ?? stored?.traffic ?? { value: 0, at: 0 },
      totalTraffic: t?.total ?? stored?.totalTraffic ?? 0,
    };
  }

  /** Writes traffic counts to the store. */
  flush(): void {
    if (this.dirty.size === 0) return;
    const { store } = this.ctx.deps;
    store.transaction(() => {
      for (const agent of this.dirty) {
        store.putNeighbour(this.row(agent));
      }
    });
    this.dirty.clear();
  }
}

import type { AgentId, Fingerprint } from '../../common/ids.ts';
import { entryExpired, type PathEntry } from './path.ts';

/** A path this agent can use, with what it has learned about it. */
export interface CachedPath {
  entries: PathEntry[];
  /** Agent ids in order, first hop first. */
  agents: AgentId[];
  /** Unix ms when it was learned. */
  learnedAt: number;
  /** Times it stalled or failed since it was learned. */
  failures: number;
  /** The target's public key as it came with the path (unchecked here); handed on in cache answers. */
  entityKey?: Uint8Array;
}

/**
 * Picks the path to use next. Why this order: a path that never failed beats one that did; among
 * those, avoiding agents of a path that just stalled (likely dead) matters more than length; then
 * fewer hops (fewer chances to stall), then the freshest.
 */
export function choosePath(
  paths: readonly CachedPath[],
  avoid: ReadonlySet<AgentId> = new Set(),
): CachedPath | undefined {
  const overlap = (p: CachedPath) => p.agents.filter((a) => avoid.has(a)).length;
  return [...paths].sort(
    (a, b) =>
      a.failures - b.failures ||
      overlap(a) - overlap(b) ||
      a.agents.length - b.agents.length ||
      b.learnedAt - a.learnedAt,
  )[0];
}

/** Paths per target entity, with age and failures; bounded per target and in time. */
export class PathCache {
  private readonly paths = new Map<Fingerprint, CachedPath[]>();

  constructor(
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
    private readonly perTarget = 8,
  ) {}

  /** Adds a verified path (replacing one through the same agents). */
  add(target: Fingerprint, entries: PathEntry[], entityKey?: Uint8Array): CachedPath {
    const agents = entries.map((e) => e.agent);
    const key = agents.join(',');
    const list = this.get(target).filter((p) => p.agents.join(',') !== key);
    const path: CachedPath = { entries, agents, learnedAt: this.now(), failures: 0 };
    if (entityKey) path.entityKey = entityKey;
    list.push(path);
    list.sort((a, b) => a.failures - b.failures || a.agents.length - b.agents.length);
    this.paths.set(target, list.slice(0, this.perTarget));
    return path;
  }

  /**
   * Fresh, unexpired paths to a target: learned less than maxAgeMs ago, and no entry's signed
   * expiry past (with the signers' clock skew allowed). `now` is the core's steady clock, so a step
   * of the system clock neither ages nor expires a path (docs/protocol.md 7.6, "Clocks").
   */
  get(target: Fingerprint): CachedPath[] {
    const now = this.now();
    const list = (this.paths.get(target) ?? []).filter(
      (p) => now - p.learnedAt < this.maxAgeMs && !p.entries.some((e) => entryExpired(e, now)),
    );
    if (list.length === 0) this.paths.delete(target);
    else this.paths.set(target, list);
    return list;
  }

  /** Counts a failure against a path (stall, unreachable first hop). */
  fail(target: Fingerprint, agents: readonly AgentId[]): void {
    const key = agents.join(',');
    for (const p of this.paths.get(target) ?? []) if (p.agents.join(',') === key) p.failures++;
  }

  /** Forgets every path through an agent (revoked, or its link went down for good). */
  dropAgent(agent: AgentId): void {
    this.dropWhere((a) => a === agent);
  }

  /**
   * Forgets every path through an agent for which `drop` is true (the sender passes the trust
   * view's isRevoked: a path learned before a revocation must not be used after it). Returns the
   * number of paths forgotten.
   */
  dropWhere(drop: (agent: AgentId) => boolean): number {
    let dropped = 0;
    for (const [target, list] of this.paths) {
      const kept = list.filter((p) => !p.agents.some(drop));
      dropped += list.length - kept.length;
      if (kept.length === 0) this.paths.delete(target);
      else this.paths.set(target, kept);
    }
    return dropped;
  }
}

import type { AgentId } from '../../common/ids.ts';

/**
 * Counts complaints against the neighbours that handed on complained-about messages. Crossing the
 * threshold calls back once per neighbour (the node revokes its trust there); counts live as long
 * as the process, the callback's effect (revocation) is what persists.
 */
export class ComplaintCounter {
  private readonly counts = new Map<AgentId, number>();

  constructor(
    private readonly threshold: number,
    private readonly onThreshold: (neighbour: AgentId, count: number) => void,
  ) {}

  /** Counts one complaint; returns the neighbour's new count. */
  add(neighbour: AgentId): number {
    const count = (this.counts.get(neighbour) ?? 0) + 1;
    this.counts.set(neighbour, count);
    if (count === this.threshold) this.onThreshold(neighbour, count);
    return count;
  }

  /** Complaints counted so far against a neighbour. */
  count(neighbour: AgentId): number {
    return this.counts.get(neighbour) ?? 0;
  }
}

import type { AgentId } from '../../common/ids.ts';

/**
 * A hybrid logical clock timestamp (Kulkarni et al.): wall-clock milliseconds, a counter that
 * orders events within one millisecond (or while the wall clock lags a sibling's), and the
 * author agent as the final tie-break, so every two stamps of the entity compare one way.
 */
export interface Stamp {
  /** Milliseconds since the epoch, never below the author's previous stamp. */
  w: number;
  /** Orders stamps with the same `w`. */
  c: number;
  /** The agent that made the stamp. */
  a: AgentId;
}

/** Total order of stamps: wall, then counter, then author (a plain string comparison). */
export function compareStamps(x: Stamp, y: Stamp): number {
  if (x.w !== y.w) return x.w < y.w ? -1 : 1;
  if (x.c !== y.c) return x.c < y.c ? -1 : 1;
  return x.a < y.a ? -1 : x.a > y.a ? 1 : 0;
}

/**
 * One agent's clock. tick() stamps a local change; observe() folds in a sibling's stamp so the
 * next local change orders after everything this agent has seen, even when its own wall clock
 * is behind (that is what makes last-writer-wins follow causality between devices).
 */
export class HybridClock {
  private w: number;
  private c: number;

  constructor(
    private readonly self: AgentId,
    private readonly now: () => number,
    last: { w: number; c: number } = { w: 0, c: 0 },
  ) {
    this.w = last.w;
    this.c = last.c;
  }

  /** The stamp of a new local change. */
  tick(): Stamp {
    const wall = this.now();
    if (wall > this.w) {
      this.w = wall;
      this.c = 0;
    } else {
      this.c += 1;
    }
    return { w: this.w, c: this.c, a: this.self };
  }

  /** Moves the clock past a stamp received from a sibling (already checked not to be far ahead). */
  observe(stamp: { w: number; c: number }): void {
    if (stamp.w > this.w || (stamp.w === this.w && stamp.c > this.c)) {
      this.w = stamp.w;
      this.c = stamp.c;
    }
  }

  /** The last stamp given out or observed (persisted so a restart never goes back). */
  last(): { w: number; c: number } {
    return { w: this.w, c: this.c };
  }
}

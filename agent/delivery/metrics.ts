/** Counters of one engine: traffic handled and every rejection by reason (rejected_*). */
export class Metrics {
  private readonly counters = new Map<string, number>();

  readonly count = (name: string, by = 1): void => {
    this.counters.set(name, (this.counters.get(name) ?? 0) + by);
  };

  get(name: string): number {
    return this.counters.get(name) ?? 0;
  }

  /** All counters, for logs and the CLI. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counters].sort(([a], [b]) => a.localeCompare(b)));
  }

  /** Sum of all rejected_* counters. */
  rejected(): number {
    let n = 0;
    for (const [k, v] of this.counters) if (k.startsWith('rejected_')) n += v;
    return n;
  }
}

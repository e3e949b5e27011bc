// Every fuzz target, for the long run (test/fuzz/run.ts). The seeded CI runs import the groups.
import type { Target } from '../harness.ts';
import { coreTargets } from './core.ts';

export interface Entry {
  target: Target;
  /** Fewer inputs than asked (a live server over one connection): how many, from the asked number. */
  runsFor?(asked: number): number;
  note?: string;
  stop?(): Promise<void>;
}

let entries: Entry[] | undefined;

export async function allTargets(): Promise<Entry[]> {
  entries ??= [...coreTargets()].map((target) => ({ target: target as Target }));
  return entries;
}

import { performance } from 'node:perf_hooks';

/** Wall-clock milliseconds (Unix ms) for protocol times: what the delivery core signs and checks. */
export type Clock = () => number;

/** How far the wall clock must move against the monotonic clock between two reads to count as a step. */
export const CLOCK_STEP_MS = 1_000;

/**
 * A wall clock that does not follow steps of the system clock while the process runs
 * (docs/protocol.md 7.6, "Clocks"): the system wall clock, less every step seen since the process
 * started. A step is a change of the wall clock between two reads that differs from the monotonic
 * clock's by more than CLOCK_STEP_MS (plus 0.1% of the interval, so NTP slewing over a long quiet
 * spell is not taken for one). Without a step it is exactly Date.now(). Why: a node cannot tell a
 * step that corrects its clock from one that breaks it, while everything it signed and was sent so
 * far (path expiries, packet expiries, query deadlines) agrees with the time it had; following a
 * forward step would make every fresh path look expired and make its own packets look too
 * long-lived to its neighbours, following a backward step would make what it just signed look too
 * far ahead. A restart takes the system clock as it is then; from there the peers' skew
 * tolerances apply.
 *
 * `onStep` is told the size of each step (ms, positive forward), so the node can log it.
 */
export function steadyClock(
  options: {
    wall?: () => number;
    monotonic?: () => number;
    onStep?: (stepMs: number) => void;
  } = {},
): Clock {
  const wall = options.wall ?? Date.now;
  const monotonic = options.monotonic ?? (() => performance.now());
  let lastWall = wall();
  let lastMono = monotonic();
  let correction = 0;
  return () => {
    const w = wall();
    const m = monotonic();
    const elapsed = m - lastMono;
    const step = w - lastWall - elapsed;
    if (Math.abs(step) > CLOCK_STEP_MS + elapsed / 1000) {
      correction -= Math.round(step);
      options.onStep?.(Math.round(step));
    }
    lastWall = w;
    lastMono = m;
    return w + correction;
  };
}

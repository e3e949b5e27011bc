import { performance } from 'node:perf_hooks';

/** Wall-clock milliseconds (Unix ms) for protocol times: what the delivery core signs and checks. */
export type Clock = () => number;

/** How far the wall clock must move away from the steady clock to count as a step (not slewing). */
export const CLOCK_STEP_MS = 1_000;

/**
 * A wall clock that does not follow steps of the system clock while the process runs
 * (docs/protocol.md 7.6, "Clocks"): the system wall clock read once, then advanced by the
 * monotonic clock. Why: a node cannot tell a step that corrects its clock from one that breaks
 * it, while everything it signed and was sent so far (path expiries, packet expiries, query
 * deadlines) agrees with the time it had; following a forward step would make every fresh path
 * look expired and make its own packets look too long-lived to its neighbours, following a
 * backward step would make what it just signed look too far in the future. Slewing (NTP's
 * gradual correction) moves the monotonic clock too, so it is followed. A restart takes the
 * system clock as it is then; from there the peers' skew tolerances apply.
 *
 * `onStep` is told (once per new step size) how far the system clock has moved away, so the node
 * can log it.
 */
export function steadyClock(
  options: {
    wall?: () => number;
    monotonic?: () => number;
    onStep?: (offsetMs: number) => void;
  } = {},
): Clock {
  const wall = options.wall ?? Date.now;
  const monotonic = options.monotonic ?? (() => performance.now());
  const baseWall = wall();
  const baseMono = monotonic();
  let reported = 0;
  return () => {
    const now = baseWall + Math.round(monotonic() - baseMono);
    if (options.onStep) {
      const offset = wall() - now;
      if (Math.abs(offset - reported) > CLOCK_STEP_MS) {
        reported = Math.abs(offset) > CLOCK_STEP_MS ? offset : 0;
        if (reported !== 0) options.onStep(offset);
      }
    }
    return now;
  };
}

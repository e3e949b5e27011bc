import type { DeliveryEngine, DeliveryEvent } from '../../agent/delivery/engine.ts';
import type { MessageId } from '../../common/ids.ts';
import { randomBytes } from 'node:crypto';
import type { jest } from '@jest/globals';
import { HANG_MS } from '../helpers/hang.ts';

export function newMessageId(): MessageId {
  return randomBytes(16).toString('hex') as MessageId;
}

/** Collects an engine's events and waits for one matching a predicate. */
export function recordEvents(engine: DeliveryEngine): {
  events: DeliveryEvent[];
  waitFor: (pred: (e: DeliveryEvent) => boolean, timeoutMs?: number) => Promise<DeliveryEvent>;
} {
  const events: DeliveryEvent[] = [];
  const waiters: { pred: (e: DeliveryEvent) => boolean; resolve: (e: DeliveryEvent) => void }[] = [];
  engine.onEvent((e) => {
    events.push(e);
    for (const w of [...waiters]) {
      if (w.pred(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  });
  return {
    events,
    waitFor: (pred, timeoutMs = HANG_MS) => {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`event not seen; got ${JSON.stringify(events)}`)),
          timeoutMs,
        );
        waiters.push({
          pred,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
  };
}

/**
 * Jest fake timers for the engines' own timers (stall, the longer wait after "held"), moved by the
 * test with jest.advanceTimersByTimeAsync: "no re-send within N stall timeouts" then holds at any
 * load. The simulator's network runs on setImmediate, left real, so packets still flow; use the
 * Simulation with `quiesce: true` so discovery ends when the network is idle, not on a timer.
 */
export const ENGINE_FAKE_TIMERS: Parameters<typeof jest.useFakeTimers>[0] = {
  doNotFake: ['setImmediate', 'clearImmediate', 'nextTick', 'queueMicrotask', 'hrtime', 'performance'],
};

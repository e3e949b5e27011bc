import type { ControlServer } from '../control/server.ts';
import type { SyncEngine } from './engine.ts';

/** How far a (new) agent has got with its siblings' history: `kith agent history`. */
export interface HistoryProgress {
  /** Linked siblings that told us what they hold (their version vector). */
  siblingsHeard: number;
  /** Changes of all authors held here, and the most any of those siblings holds. */
  changes: { held: number; known: number };
  /** Messages whose bytes are here, and those that show in the merged state but are on their way. */
  messages: { held: number; missing: number };
  done: boolean;
}

/**
 * Caught up once some sibling has told us what it holds, we hold every change it holds, and
 * every message those changes show is here. Why a sibling must have spoken: before its version
 * vector arrives a new agent holds nothing and knows of nothing, which is not "done".
 */
export function historyDone(p: Omit<HistoryProgress, 'done'>): boolean {
  return p.siblingsHeard > 0 && p.changes.held >= p.changes.known && p.messages.missing === 0;
}

export function historyProgress(
  engine: SyncEngine,
  messages: () => { held: number; missing: number },
): HistoryProgress {
  const h = engine.historyProgress();
  const p = {
    siblingsHeard: h.siblingsHeard,
    changes: { held: h.changesHeld, known: h.changesKnown },
    messages: messages(),
  };
  return { ...p, done: historyDone(p) };
}

/**
 * Control method `agent.history` (docs/protocol.md 13): the progress now, or with `follow` an
 * update at every applied batch, arrived message and sibling heard, until caught up.
 */
export function registerHistoryMethod(
  server: ControlServer,
  engine: SyncEngine,
  now: () => HistoryProgress,
): void {
  server.register('agent.history', async (params, update) => {
    if (params.follow !== true || now().done) return now();
    update(now());
    await new Promise<void>((resolve) => {
      const unsubscribe = engine.onChange(() => {
        const p = now();
        update(p);
        if (p.done) {
          unsubscribe();
          resolve();
        }
      });
    });
    return now();
  });
}

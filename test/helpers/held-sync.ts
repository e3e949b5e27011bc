import type { SyncFile } from '../../store/group-commit.ts';

/**
 * A group commit's WAL sync that waits until the test lets it go: between a commit (rows visible
 * to their connection) and its sync (writers resolved) a test can look at what readers see.
 */
export function heldSync() {
  const calls: Array<{ path: string; done: (err?: Error) => void }> = [];
  const sync: SyncFile = (path) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ path, done: (err) => (err ? reject(err) : resolve()) });
    });
  /** The next sync asked for, once it is. */
  const next = async () => {
    while (calls.length === 0) await new Promise((r) => setImmediate(r));
    return calls.shift()!;
  };
  return { sync, next, calls };
}

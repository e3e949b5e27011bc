import type { Queue } from 'bullmq';

/**
 * Keeps a queue's jobs in step with the durable rows they stand for: runs `reconcile` every
 * `periodMs`, and at once when Redis comes back after a lost connection (a restarted Redis may
 * have lost the last second before a crash, or everything when its files are gone). Only after a
 * loss: the first connection's late 'ready' must not race a caller's own reconcile(). Returns the
 * function that stops the timer.
 */
export function keepReconciled(
  queue: Queue,
  reconcile: () => Promise<unknown>,
  periodMs: number,
  onRedisBack?: () => void,
): () => void {
  const run = (): void => void reconcile().catch(() => undefined);
  let lost = false;
  const backend = queue.getBackend();
  backend.on('close', () => (lost = true));
  backend.on('ready', () => {
    if (!lost) return;
    lost = false;
    onRedisBack?.();
    run();
  });
  const timer = setInterval(run, periodMs);
  timer.unref();
  return () => clearInterval(timer);
}

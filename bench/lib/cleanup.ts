// Stops what a benchmark started when it is interrupted (Ctrl-C, or `npm run bench` forwarding a
// signal): `finally` blocks do not run on a signal, and Postfix's master daemonizes, so it would
// outlive us. Child processes driven over IPC stop on their own when we exit.
const cleanups = new Set<() => Promise<void>>();
let installed = false;

/** Registers a cleanup for interruption; call the returned function once it ran normally. */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  if (!installed) {
    installed = true;
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        process.stderr.write(`\n${signal}: stopping what the benchmark started...\n`);
        void (async () => {
          // Newest first: what was started last is stopped before the directory it lives in goes.
          for (const cleanup of [...cleanups].reverse()) await cleanup().catch(() => undefined);
          process.exit(130);
        })();
      });
    }
  }
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

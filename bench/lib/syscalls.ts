// How often processes call fsync/fdatasync during a phase of a benchmark, counted by the kernel
// (perf stat on the syscall tracepoints: no ptrace, so the processes run at their usual speed).
// Optional: where perf or its tracepoints are missing, counting() says why and nothing is counted.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

const EVENTS = ['syscalls:sys_enter_fsync', 'syscalls:sys_enter_fdatasync'];

/** Why syscalls cannot be counted here, or undefined. */
export function syncCountMissing(): string | undefined {
  try {
    execFileSync('perf', ['stat', '-x', ',', '-e', EVENTS.join(','), '--', 'true'], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `perf stat on ${EVENTS.join(', ')} failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

export interface SyncCounter {
  /** Stops counting; fsync + fdatasync calls per pid since start (every thread of each process). */
  stop(): Promise<Map<number, number>>;
}

export function countSyncs(pids: number[]): SyncCounter {
  const runs: { pid: number; child: ChildProcess; out: Promise<string> }[] = pids.map((pid) => {
    const child = spawn('perf', ['stat', '-x', ',', '-e', EVENTS.join(','), '-p', String(pid)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let text = '';
    child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
    const out = new Promise<string>((resolve) => child.once('exit', () => resolve(text)));
    return { pid, child, out };
  });
  return {
    async stop() {
      const counts = new Map<number, number>();
      for (const r of runs) {
        r.child.kill('SIGINT');
        const text = await r.out;
        let n = 0;
        for (const line of text.split('\n')) {
          const [value, , event] = line.split(',');
          if (event && EVENTS.includes(event) && /^\d+$/.test(value ?? '')) n += Number(value);
        }
        counts.set(r.pid, n);
      }
      return counts;
    },
  };
}

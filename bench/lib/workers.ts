// Child processes the benchmarks drive over IPC: Kith agents (agent-worker.ts) and the raw
// libp2p baseline (raw-worker.ts). Every process started here is stopped by stop().
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { peakRss } from './stats.ts';

/** A benchmark child process answering method calls. */
export interface Worker {
  name: string;
  pid: number;
  call<T>(method: string, params?: Record<string, unknown>): Promise<T>;
  /** Peak RSS so far (VmHWM) of this process, in bytes. */
  peak(): number | undefined;
  stop(): Promise<void>;
}

const built = new Map<string, string>();

/**
 * The worker compiled to one JavaScript file (esbuild, npm packages left as imports), as a
 * deployed node runs: tsx compiling TypeScript in the process costs ~50 MiB of RSS, which is not
 * the node's. Written under node_modules/.cache so that the packages resolve from there.
 */
export function compiledWorker(script: string): string {
  const known = built.get(script);
  if (known) return known;
  const dir = fileURLToPath(new URL('../../node_modules/.cache/kith-bench/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const outfile = `${dir}${script.replace(/\.ts$/, '.mjs')}`;
  buildSync({
    entryPoints: [fileURLToPath(new URL(`./${script}`, import.meta.url))],
    outfile,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
  built.set(script, outfile);
  return outfile;
}

/**
 * Starts a worker; `execArgv` goes to its node (e.g. ['--cpu-prof', '--cpu-prof-dir', dir]: the
 * profile is written when the worker exits, which stop() lets it do). `compiled` runs it from
 * compiledWorker's bundle instead of through tsx.
 */
export function startWorker(
  script: 'agent-worker.ts' | 'raw-worker.ts',
  name: string,
  execArgv: string[] = [],
  options: { compiled?: boolean } = {},
): Worker {
  const args = options.compiled
    ? [compiledWorker(script)]
    : ['--import', 'tsx', fileURLToPath(new URL(`./${script}`, import.meta.url))];
  const child: ChildProcess = spawn(process.execPath, [...execArgv, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let seq = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  child.on('message', (msg: { id: number; result?: unknown; error?: string }) => {
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error !== undefined) p.reject(new Error(`${name}: ${msg.error}`));
    else p.resolve(msg.result);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => {
    for (const p of pending.values()) p.reject(new Error(`${name} exited`));
    pending.clear();
  });
  return {
    name,
    pid: child.pid!,
    call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
      const id = ++seq;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ id, method, params });
      });
    },
    peak: () => peakRss(child.pid!),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // The worker stops its node on disconnect; a stuck one is killed after a grace period.
      if (child.connected) child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

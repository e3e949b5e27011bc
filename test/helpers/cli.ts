import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { HANG_MS } from './hang.ts';

export const KITH_BIN = fileURLToPath(new URL('../../bin/kith.mjs', import.meta.url));

/** A node on loopback only, every port chosen by the system, quiet logs: the environment of CLI tests' nodes. */
export const LOOPBACK_NODE_ENV: Readonly<Record<string, string>> = {
  KITH_PASSPHRASE: 'a long enough passphrase',
  KITH_P2P_LISTEN: '["/ip4/127.0.0.1/tcp/0"]',
  KITH_SMTP_PORT: '0',
  KITH_IMAP_PORT: '0',
  KITH_HTTP_PORT: '0',
  KITH_STREAMS_PORT: '0',
  KITH_LOG_LEVEL: 'warn',
};

/** Runs `kith ARGS` to completion; the environment has no stray KITH_* variables. */
export function runKith(
  args: string[],
  env: Record<string, string> = {},
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [KITH_BIN, ...args], {
    env: { ...cleanEnv(), ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Starts `kith ARGS` in the background; resolves once stdout matched `ready`. */
export async function startKith(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
  /** A hang detector, not a speed check: a first start beside a CPU hog took over a minute. */
  timeoutMs = HANG_MS,
  /** A command to run kith under, e.g. `ip netns exec NS` (the default: none). */
  wrapper: string[] = [],
): Promise<{ child: ChildProcess; stdout: () => string; stderr: () => string }> {
  const argv = [...wrapper, process.execPath, KITH_BIN, ...args];
  const child = spawn(argv[0], argv.slice(1), {
    env: { ...cleanEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    // a node that never got ready is stopped: left running, it kept Jest from exiting (test/faults)
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kith did not get ready: ${out}\n${err}`));
    }, timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kith exited with ${code}: ${out}\n${err}`));
    });
  });
  return { child, stdout: () => out, stderr: () => err };
}

/** Resolves with the exit code once the child has exited. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** This process's environment without KITH_* variables and NODE_OPTIONS (Jest's ESM flags). */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('KITH_') && v !== undefined && k !== 'NODE_OPTIONS') env[k] = v;
  }
  return env;
}

/** `kith ARGS` without blocking this process: for a node running inside the test (its control socket must answer). */
export async function runKithAsync(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [KITH_BIN, ...args], {
    env: { ...cleanEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const status = await new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  return { status, stdout, stderr };
}

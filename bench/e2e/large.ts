// A large file end to end: `kith send bob@bench.kith --file F --wait` on alice's node, through
// carol and dave (3 links), until alice's node reports it delivered (bob's node saved the file
// and put the notice in bob's INBOX). Baseline: the same file copied over a raw loopback TCP
// connection between two processes (plain bytes, no encryption). Both times include starting
// the sending command. Peak memory (VmHWM, or /usr/bin/time's maximum RSS for short-lived
// commands) of every process taking part is printed.
// Run: node --import tsx bench/e2e/large.ts [--mib 1024]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onInterrupt } from '../lib/cleanup.ts';
import { randomFile, receivedFile, sha256File } from '../lib/files.ts';
import { agentPeaks, startKithLine } from '../lib/kith-line.ts';
import { header, mib, row } from '../lib/stats.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const BYTES = arg('mib', 1024) * 1024 * 1024;
const KITH_BIN = fileURLToPath(new URL('../../bin/kith.mjs', import.meta.url));
const TCP_COPY = fileURLToPath(new URL('../lib/tcp-copy.ts', import.meta.url));
const TIME = '/usr/bin/time';

interface Run {
  stdout: string;
  /** Maximum resident set size of the command, from /usr/bin/time (bytes). */
  peak?: number;
}

/** Runs a command to completion (under /usr/bin/time when it exists); `onLine` sees stdout lines. */
function run(args: string[], timeFile: string, onLine?: (line: string) => void): Promise<Run> {
  const timed = existsSync(TIME);
  const argv = timed ? [TIME, '-f', '%M', '-o', timeFile, ...args] : args;
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => {
    const before = stdout.length;
    stdout += d.toString();
    if (onLine) for (const line of stdout.slice(before).split('\n').filter(Boolean)) onLine(line);
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`${args.join(' ')} exited with ${code}: ${stdout}`));
      const peak = timed ? Number(readFileSync(timeFile, 'utf8').trim().split('\n').pop()) * 1024 : undefined;
      resolve({ stdout, peak });
    });
  });
}

async function tcpCopy(root: string, file: string, digest: string) {
  const out = join(root, 'tcp-copy.bin');
  let t0 = 0;
  let send: Promise<Run> | undefined;
  const recv = run(
    [process.execPath, '--import', 'tsx', TCP_COPY, 'recv', out],
    join(root, 'recv.time'),
    (port) => {
      t0 = performance.now();
      send = run(
        [process.execPath, '--import', 'tsx', TCP_COPY, 'send', port, file],
        join(root, 'send.time'),
      );
    },
  );
  const r = await recv;
  const seconds = (performance.now() - t0) / 1000;
  const s = await send!;
  if ((await sha256File(out)) !== digest) throw new Error('the TCP copy differs from the file');
  rmSync(out);
  return {
    seconds,
    peaks: [
      { name: 'sender', bytes: s.peak },
      { name: 'receiver', bytes: r.peak },
    ],
  };
}

async function kith(root: string, file: string, digest: string) {
  const { agents, stop } = await startKithLine(join(root, 'kith'));
  try {
    const alice = agents[0]!;
    const bob = agents[agents.length - 1]!;
    // Warm-up: discover the path to bob (a fresh network has none cached).
    await alice.call('roundTrips', { to: bob.fingerprint, toEmail: bob.email, count: 2 });
    const t0 = performance.now();
    const cli = await run(
      [
        process.execPath,
        KITH_BIN,
        '--data-dir',
        join(root, 'kith', 'alice'),
        'send',
        bob.email,
        '--file',
        file,
        '--wait',
      ],
      join(root, 'cli.time'),
    );
    const seconds = (performance.now() - t0) / 1000;
    if (process.env.BENCH_VERBOSE) process.stderr.write(cli.stdout);
    const dir = join(root, 'kith', 'bob', 'received');
    await receivedFile(dir, BYTES, digest);
    return { seconds, peaks: [{ name: '`kith send --wait`', bytes: cli.peak }, ...agentPeaks(agents)] };
  } finally {
    await stop();
  }
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'kith-bench-large-'));
  const forget = onInterrupt(async () => rmSync(root, { recursive: true, force: true }));
  try {
    const file = join(root, 'payload.bin');
    await randomFile(file, BYTES);
    const digest = await sha256File(file);
    process.stderr.write(`  raw TCP copy of ${mib(BYTES)}...\n`);
    const b = await tcpCopy(root, file, digest);
    process.stderr.write(`  kith send of ${mib(BYTES)} across 3 links...\n`);
    const k = await kith(root, file, digest);
    console.log(
      header(`${mib(BYTES)} file end to end: \`kith send\` across 3 links vs raw loopback TCP copy`),
    );
    console.log(row('time until delivered / copied', k.seconds, b.seconds, 's'));
    console.log(row('throughput', BYTES / 1e6 / k.seconds, BYTES / 1e6 / b.seconds, 'MB/s'));
    console.log('\npeak RSS per process');
    console.log(`  kith: ${k.peaks.map((p) => `${p.name} ${mib(p.bytes)}`).join(', ')}`);
    console.log(`  raw TCP: ${b.peaks.map((p) => `${p.name} ${mib(p.bytes)}`).join(', ')}`);
  } finally {
    forget();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();

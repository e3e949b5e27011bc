// A huge file through 3 hops (alice → carol → dave → bob, each agent its own process with its own
// redis-server), as `kith send --file` sends it, against the raw libp2p pipe (TCP + Noise + yamux,
// piped hop to hop through the same line of processes, bench/lib/raw-worker.ts) measured in the same
// run. Prints both times, their ratio, and every process's peak RSS against the issue's bound
// (every process < 256 MiB at 4 GiB). One run: at 4 GiB it writes ~12 GiB to disk and takes minutes.
// Run: node --import tsx bench/streams/big.ts [--mib 4096]
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onInterrupt } from '../lib/cleanup.ts';
import { randomFile, sha256File } from '../lib/files.ts';
import { agentPeaks, LINE_NAMES, startKithLine } from '../lib/kith-line.ts';
import { header, mib, row } from '../lib/stats.ts';
import { startWorker, type Worker } from '../lib/workers.ts';

const i = process.argv.indexOf('--mib');
const BYTES = (i >= 0 ? Number(process.argv[i + 1]) : 4096) * 1024 * 1024;
const BOUND = 256 * 1024 * 1024;

type Peak = { name: string; bytes: number | undefined };

async function kith(root: string, file: string, digest: string): Promise<{ seconds: number; peaks: Peak[] }> {
  const { agents, stop } = await startKithLine(join(root, 'kith'), { stallTimeoutMs: 60_000 });
  try {
    const alice = agents[0]!;
    const bob = agents[agents.length - 1]!;
    const to = { to: bob.fingerprint, toEmail: bob.email };
    await alice.call('roundTrips', { ...to, count: 3 }); // discovery and the links' first streams
    process.stderr.write(`  kith: ${mib(BYTES)} file...\n`);
    const ms = await alice.call<number>('sendFile', { ...to, path: file });
    const peaks = agentPeaks(agents);
    const dir = join(root, 'kith', 'bob', 'received');
    const [saved] = readdirSync(dir);
    if (
      !saved ||
      statSync(join(dir, saved)).size !== BYTES ||
      (await sha256File(join(dir, saved))) !== digest
    )
      throw new Error('the file bob received differs from the one sent');
    rmSync(join(dir, saved));
    return { seconds: ms / 1000, peaks };
  } finally {
    await stop();
  }
}

async function raw(file: string): Promise<{ seconds: number; peaks: Peak[] }> {
  const workers: Worker[] = LINE_NAMES.map((name) => startWorker('raw-worker.ts', name));
  try {
    const addrs: string[] = [];
    for (const w of workers) addrs.push(await w.call<string>('init', { sinkFile: '/dev/null' }));
    for (let n = 0; n + 1 < workers.length; n++) await workers[n]!.call('next', { addr: addrs[n + 1] });
    process.stderr.write(`  raw libp2p: ${mib(BYTES)} file...\n`);
    const t0 = performance.now();
    const received = await workers[0]!.call<number>('bulk', { path: file });
    const seconds = (performance.now() - t0) / 1000;
    if (received !== BYTES) throw new Error(`raw sink received ${received} bytes`);
    return { seconds, peaks: workers.map((w) => ({ name: `${w.name} (node)`, bytes: w.peak() })) };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'kith-bench-big-'));
  const forget = onInterrupt(async () => rmSync(root, { recursive: true, force: true }));
  try {
    const file = join(root, 'payload.bin');
    await randomFile(file, BYTES);
    const digest = await sha256File(file);
    const k = await kith(root, file, digest);
    const b = await raw(file);
    console.log(
      header(
        `${mib(BYTES)} through 3 hops (alice → carol → dave → bob): kith send --file vs raw libp2p pipe`,
      ),
    );
    console.log(row('transfer time (until delivered and saved)', k.seconds, b.seconds, 's'));
    console.log(row('throughput', BYTES / 1e6 / k.seconds, BYTES / 1e6 / b.seconds, 'MB/s'));
    const over = k.peaks.filter((p) => (p.bytes ?? 0) >= BOUND);
    console.log(`\npeak RSS per process (bound ${mib(BOUND)} each)`);
    console.log(`  kith: ${k.peaks.map((p) => `${p.name} ${mib(p.bytes)}`).join(', ')}`);
    console.log(`  raw libp2p: ${b.peaks.map((p) => `${p.name} ${mib(p.bytes)}`).join(', ')}`);
    console.log(
      over.length === 0
        ? 'every kith process stayed under the bound'
        : `OVER THE BOUND: ${over.map((p) => p.name).join(', ')}`,
    );
    if (over.length > 0) process.exitCode = 1;
  } finally {
    forget();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();

// A huge file through 3 hops (alice → carol → dave → bob, each agent its own process with its own
// redis-server), as `kith send --file` sends it, against the raw libp2p pipe (TCP + Noise + yamux,
// piped hop to hop through the same line of processes, bench/lib/raw-worker.ts) measured in the same
// run. The file is a WebM (an ffmpeg test pattern looped by remuxing up to the size), so the time to
// the first playable byte is a player's: ffmpeg decoding its first second from bob's link while the
// file arrives; the raw pipe's is the time until its sink holds the first 2 MiB (the issue's bound
// for a player's start). Prints every process's peak RSS against the issue's bound (every process
// < 256 MiB at 4 GiB). At 4 GiB it writes ~16 GiB to disk.
// Run: nice -n 10 node --import tsx bench/streams/big.ts [--mib 4096] [--tsx] [--node-flags '...'] [--raw-first]
// (--tsx runs the agents through tsx instead of compiled JavaScript; tsx costs ~50 MiB per process.
// Each identity is made in a short-lived process first, as `kith init` does before `kith start`.)
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { onInterrupt } from '../lib/cleanup.ts';
import { receivedFile, sha256File } from '../lib/files.ts';
import { agentPeaks, LINE_NAMES, startKithLine } from '../lib/kith-line.ts';
import { currentRss, header, mib, row } from '../lib/stats.ts';
import { startWorker, type Worker } from '../lib/workers.ts';
import { randomBytes } from 'node:crypto';
import { makeWebm } from './webm.ts';

const run = promisify(execFile);
const i = process.argv.indexOf('--mib');
const BYTES = (i >= 0 ? Number(process.argv[i + 1]) : 4096) * 1024 * 1024;
const COMPILED = !process.argv.includes('--tsx');
const f = process.argv.indexOf('--node-flags');
/** Extra node options for each Kith agent, e.g. --node-flags '--max-semi-space-size=2'. */
const NODE_FLAGS = f >= 0 ? process.argv[f + 1]!.split(/\s+/).filter(Boolean) : [];
const BOUND = 256 * 1024 * 1024;

type Peak = { name: string; bytes: number | undefined };
type Result = { seconds: number; firstPlayable: number; peaks: Peak[]; during?: Peak[] };

/**
 * The largest VmRSS of each process seen while `work` runs (sampled every 250 ms); every minute a
 * line on stderr with the peaks so far and `progress()`, so a run cut short still tells something.
 */
async function sampled<T>(
  procs: { name: string; pid: number }[],
  work: Promise<T>,
  progress: () => string,
): Promise<[T, Peak[]]> {
  const max = procs.map(() => 0);
  const sample = () => procs.forEach((p, k) => (max[k] = Math.max(max[k]!, currentRss(p.pid) ?? 0)));
  const timer = setInterval(sample, 250);
  const started = Date.now();
  const report = setInterval(() => {
    const peaks = procs.map((p, k) => `${p.name} ${mib(max[k])}`).join(', ');
    process.stderr.write(
      `  ${((Date.now() - started) / 1000).toFixed(0)} s: ${progress()}; peak RSS so far: ${peaks} (load ${loadavg()[0]!.toFixed(1)})\n`,
    );
  }, 60_000);
  try {
    const result = await work;
    sample();
    return [result, procs.map((p, k) => ({ name: p.name, bytes: max[k] }))];
  } finally {
    clearInterval(timer);
    clearInterval(report);
  }
}

/** Bytes bob's node has stored of transfers being assembled (its spool files' allocated blocks). */
function spooled(dir: string): number {
  try {
    return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).blocks * 512, 0);
  } catch {
    return 0;
  }
}

async function kith(root: string, file: string, digest: string): Promise<Result> {
  const { agents, stop } = await startKithLine(join(root, 'kith'), {
    stallTimeoutMs: 60_000,
    compiled: COMPILED,
    separateInit: true,
    execArgv: () => NODE_FLAGS,
  });
  try {
    const alice = agents[0]!;
    const bob = agents[agents.length - 1]!;
    const to = { to: bob.fingerprint, toEmail: bob.email };
    await alice.call('roundTrips', { ...to, count: 3 }); // discovery and the links' first streams
    process.stderr.write(`  kith: ${mib(BYTES)} file...\n`);
    const id = randomBytes(16).toString('hex');
    const procs = agents.flatMap((a) => [
      { name: `${a.name} (node)`, pid: a.pid },
      ...(a.redisPid ? [{ name: `${a.name} (redis-server)`, pid: a.redisPid }] : []),
    ]);
    const sent = alice.call<{ ms: number; sentAt: number }>('sendFile', {
      ...to,
      path: file,
      id,
      timed: true,
      inPlace: true,
    });
    // A player on bob's side: ffmpeg decodes the first second from the link while the file arrives.
    let playedAt = 0;
    const played = bob.call<string>('linkOf', { id }).then(async (url) => {
      await run('ffmpeg', ['-v', 'error', '-i', url, '-t', '1', '-f', 'null', '-']);
      playedAt = Date.now();
      process.stderr.write(`  kith: 1 s decoded from bob's link (load ${loadavg()[0]!.toFixed(1)})\n`);
    });
    const spool = join(root, 'kith', 'bob', 'spool');
    const [{ ms, sentAt }, during] = await sampled(
      procs,
      Promise.all([sent, played]).then(([s]) => s),
      () => `bob holds ${mib(spooled(spool))} of ${mib(BYTES)}`,
    );
    const peaks = agentPeaks(agents);
    const dir = join(root, 'kith', 'bob', 'received');
    rmSync(await receivedFile(dir, BYTES, digest));
    return { seconds: ms / 1000, firstPlayable: (playedAt - sentAt) / 1000, peaks, during };
  } finally {
    await stop();
  }
}

async function raw(file: string): Promise<Result> {
  const workers: Worker[] = LINE_NAMES.map((name) =>
    startWorker('raw-worker.ts', name, [], { compiled: COMPILED }),
  );
  try {
    const addrs: string[] = [];
    for (const w of workers) addrs.push(await w.call<string>('init', { sinkFile: '/dev/null' }));
    for (let n = 0; n + 1 < workers.length; n++) await workers[n]!.call('next', { addr: addrs[n + 1] });
    process.stderr.write(`  raw libp2p: ${mib(BYTES)} file...\n`);
    const started = Date.now();
    const t0 = performance.now();
    const received = await workers[0]!.call<number>('bulk', { path: file });
    const seconds = (performance.now() - t0) / 1000;
    if (received !== BYTES) throw new Error(`raw sink received ${received} bytes`);
    const firstAt = await workers.at(-1)!.call<number>('firstBytes');
    return {
      seconds,
      firstPlayable: (firstAt - started) / 1000,
      peaks: workers.map((w) => ({ name: `${w.name} (node)`, bytes: w.peak() })),
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'kith-bench-big-'));
  const forget = onInterrupt(async () => rmSync(root, { recursive: true, force: true }));
  try {
    const file = await makeWebm(root, BYTES);
    const digest = await sha256File(file);
    const started = Date.now();
    // --raw-first: the baseline before Kith (its figures also printed at once), so a Kith phase
    // cut short on a loaded machine still leaves a same-run baseline beside its progress lines.
    const rawFirst = process.argv.includes('--raw-first');
    const b0 = rawFirst ? await raw(file) : undefined;
    if (b0)
      process.stderr.write(
        `  raw libp2p: ${b0.seconds.toFixed(1)} s, first 2 MiB after ${b0.firstPlayable.toFixed(2)} s, peaks ${b0.peaks.map((p) => `${p.name} ${mib(p.bytes)}`).join(', ')}\n`,
      );
    const k = await kith(root, file, digest);
    const b = b0 ?? (await raw(file));
    console.log(
      header(
        `${mib(BYTES)} WebM through 3 hops (alice → carol → dave → bob): kith send --file vs raw libp2p pipe` +
          ` (agents ${COMPILED ? 'compiled' : 'through tsx'}${NODE_FLAGS.length ? ` with ${NODE_FLAGS.join(' ')}` : ''}; bench took ${((Date.now() - started) / 1000).toFixed(0)} s)`,
      ),
    );
    console.log(row('transfer time (until delivered and saved)', k.seconds, b.seconds, 's'));
    console.log(row('throughput', BYTES / 1e6 / k.seconds, BYTES / 1e6 / b.seconds, 'MB/s'));
    console.log(
      row('first playable (kith: 1 s decoded; raw: 2 MiB)', k.firstPlayable, b.firstPlayable, 's', 2),
    );
    const over = k.peaks.filter((p) => (p.bytes ?? 0) >= BOUND);
    console.log(`\npeak RSS per process (bound ${mib(BOUND)} each)`);
    console.log(`  kith, whole life (VmHWM): ${k.peaks.map((p) => `${p.name} ${mib(p.bytes)}`).join(', ')}`);
    console.log(
      `  kith, during the transfer (VmRSS every 250 ms): ${k.during!.map((p) => `${p.name} ${mib(p.bytes)}`).join(', ')}`,
    );
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

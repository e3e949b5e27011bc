// Delivery at the engine level across 3 links on loopback (alice → carol → dave → bob, each agent
// its own process with its own redis-server), against a raw libp2p stream (TCP + Noise + yamux)
// piped hop to hop through the same line of processes.
//
// Latency is a round trip on both sides: Kith from engine.send() to the signed "delivered" report
// back at alice (the message is then durable in bob's mailbox); the baseline from writing a
// message to its 4-byte ack coming back through the pipes. Messages are ~1 KB e-mails.
// Run: node --import tsx bench/delivery/run.ts [--messages 300] [--window 50] [--mib 1024]
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onInterrupt } from '../lib/cleanup.ts';
import { randomFile, sha256File } from '../lib/files.ts';
import { agentPeaks, startKithLine, LINE_NAMES } from '../lib/kith-line.ts';
import { currentRss, header, mib, percentile, row } from '../lib/stats.ts';
import { startWorker, type Worker } from '../lib/workers.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const MESSAGES = arg('messages', 300);
const WINDOW = arg('window', 50);
const BULK = arg('mib', 1024) * 1024 * 1024;
const MESSAGE_BYTES = 1024;

interface Figures {
  p50: number;
  p99: number;
  perSecond: number;
  bulkSeconds: number;
  idle: { name: string; bytes: number | undefined }[];
  peaks: { name: string; bytes: number | undefined }[];
}

async function kith(root: string, file: string, digest: string): Promise<Figures> {
  const { agents, stop } = await startKithLine(join(root, 'kith'));
  try {
    const alice = agents[0]!;
    const bob = agents[agents.length - 1]!;
    const to = { to: bob.fingerprint, toEmail: bob.email };
    // Warm-up: discovery of bob's path and the links' first streams.
    await alice.call('roundTrips', { ...to, count: 5 });
    const idle = agents.map((a) => ({ name: a.name, bytes: currentRss(a.pid) }));
    process.stderr.write(`  kith: ${mib(BULK)} file...\n`);
    const bulkMs = await alice.call<number>('sendFile', { ...to, path: file });
    const peaks = agentPeaks(agents);
    const dir = join(root, 'kith', 'bob', 'received');
    const [saved] = readdirSync(dir);
    if (!saved || statSync(join(dir, saved)).size !== BULK || (await sha256File(join(dir, saved))) !== digest)
      throw new Error('the file bob received differs from the one sent');
    rmSync(join(dir, saved));
    process.stderr.write(`  kith: ${MESSAGES} round trips, one at a time...\n`);
    const rtts = await alice.call<number[]>('roundTrips', { ...to, count: MESSAGES });
    process.stderr.write(`  kith: ${MESSAGES * 3} messages, ${WINDOW} in flight...\n`);
    const ms = await alice.call<number>('throughput', { ...to, count: MESSAGES * 3, window: WINDOW });
    return {
      p50: percentile(rtts, 0.5),
      p99: percentile(rtts, 0.99),
      perSecond: (MESSAGES * 3) / (ms / 1000),
      bulkSeconds: bulkMs / 1000,
      idle,
      peaks,
    };
  } finally {
    await stop();
  }
}

async function raw(root: string, file: string): Promise<Figures> {
  const workers: Worker[] = LINE_NAMES.map((name) => startWorker('raw-worker.ts', name));
  try {
    const addrs: string[] = [];
    for (const w of workers)
      addrs.push(await w.call<string>('init', { sinkFile: join(root, 'raw-sink.bin') }));
    for (let i = 0; i + 1 < workers.length; i++) await workers[i]!.call('next', { addr: addrs[i + 1] });
    const alice = workers[0]!;
    await alice.call('messages', { count: 20, size: MESSAGE_BYTES });
    const idle = workers.map((w) => ({ name: w.name, bytes: currentRss(w.pid) }));
    process.stderr.write(`  raw libp2p: ${mib(BULK)} file...\n`);
    const t0 = performance.now();
    const received = await alice.call<number>('bulk', { path: file });
    const bulkSeconds = (performance.now() - t0) / 1000;
    if (received !== BULK) throw new Error(`raw sink received ${received} bytes`);
    const peaks = workers.map((w) => ({ name: `${w.name} (node)`, bytes: w.peak() }));
    const rtts = await alice.call<number[]>('messages', { count: MESSAGES, size: MESSAGE_BYTES });
    const t1 = performance.now();
    await alice.call('messages', { count: MESSAGES * 3, size: MESSAGE_BYTES, window: WINDOW });
    const perSecond = (MESSAGES * 3) / ((performance.now() - t1) / 1000);
    return { p50: percentile(rtts, 0.5), p99: percentile(rtts, 0.99), perSecond, bulkSeconds, idle, peaks };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}

function maxOf(list: { bytes: number | undefined }[]): number {
  return Math.max(...list.map((x) => x.bytes ?? 0));
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'kith-bench-delivery-'));
  const forget = onInterrupt(async () => rmSync(root, { recursive: true, force: true }));
  try {
    const file = join(root, 'payload.bin');
    await randomFile(file, BULK);
    const digest = await sha256File(file);
    const k = await kith(root, file, digest);
    const b = await raw(root, file);
    console.log(
      header(`Delivery across 3 links (alice → carol → dave → bob), engine level vs raw libp2p stream`),
    );
    console.log(row('round trip p50 (1 KB, one at a time)', k.p50, b.p50, 'ms'));
    console.log(row('round trip p99 (1 KB, one at a time)', k.p99, b.p99, 'ms'));
    console.log(row(`messages/s (1 KB, ${WINDOW} in flight)`, k.perSecond, b.perSecond, '/s', 0));
    const kMBs = BULK / 1e6 / k.bulkSeconds;
    const bMBs = BULK / 1e6 / b.bulkSeconds;
    console.log(row(`${mib(BULK)} transfer time`, k.bulkSeconds, b.bulkSeconds, 's'));
    console.log(row(`${mib(BULK)} transfer throughput`, kMBs, bMBs, 'MB/s'));
    console.log(
      row('largest process peak RSS', maxOf(k.peaks) / 2 ** 20, maxOf(b.peaks) / 2 ** 20, 'MiB', 0),
    );
    console.log('\npeak RSS per process during the transfer (RSS before it in brackets)');
    for (const [label, f] of [
      ['kith', k],
      ['raw libp2p', b],
    ] as const) {
      const idle = new Map(f.idle.map((x) => [x.name, x.bytes]));
      console.log(
        `  ${label}: ` +
          f.peaks
            .map(
              (p) =>
                `${p.name} ${mib(p.bytes)}${p.name.endsWith('(node)') ? ` (${mib(idle.get(p.name.split(' ')[0]!))})` : ''}`,
            )
            .join(', '),
      );
    }
  } finally {
    forget();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();

// Time to the first playable byte of a big file sent with `kith send --file` through 3 hops
// (alice → carol → dave → bob, each agent its own compiled process with its own redis-server, as
// in big.ts), before and after manifest version 3 (docs/protocol.md r33), in the same run:
// - "hash first": the pre-r33 critical path — the whole payload hashed (agent/payload/source.ts
//   hashFile, the pass a version 1 manifest needed) before the engine gets it;
// - "manifest v3": the engine gets it at once; the hash is computed as the chunks are read.
// Each measurement runs on a fresh line and ends at the first playable byte: ffmpeg has decoded
// the first second from bob's link (the line is then stopped; the rest of the file is not sent,
// which keeps a run within minutes). Also printed: the copy into the outgoing directory that
// `kith send --file` makes before either (not on the timed path, but a user waits for it too).
// Run: nice -n 10 node --import tsx bench/streams/first-playable.ts [--mib 1024] [--runs 1]
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { onInterrupt } from '../lib/cleanup.ts';
import { startKithLine } from '../lib/kith-line.ts';
import { header, mib, row } from '../lib/stats.ts';
import { makeWebm } from './webm.ts';

const run = promisify(execFile);
const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const BYTES = arg('mib', 1024) * 1024 * 1024;
const RUNS = arg('runs', 1);

interface Timing {
  /** `kith send --file`'s copy of the file into the outgoing directory (before the timed path). */
  copy: number;
  /** From the hand-off until the engine had sealed and stored the message. */
  engine: number;
  /** Until bob's node had the link (chunk 0 stored). */
  link: number;
  /** Until ffmpeg had decoded the first second from the link. */
  played: number;
}

async function measure(root: string, file: string, hashFirst: boolean): Promise<Timing> {
  const dir = join(root, `line-${randomBytes(4).toString('hex')}`);
  const { agents, stop } = await startKithLine(dir, {
    stallTimeoutMs: 60_000,
    compiled: true,
    separateInit: true,
  });
  try {
    const alice = agents[0]!;
    const bob = agents.at(-1)!;
    const to = { to: bob.fingerprint, toEmail: bob.email };
    await alice.call('roundTrips', { ...to, count: 3 }); // discovery and the links' first streams
    const id = randomBytes(16).toString('hex');
    let linkAt = 0;
    let playedAt = 0;
    const played = bob.call<string>('linkOf', { id }).then(async (url) => {
      linkAt = Date.now();
      await run('ffmpeg', ['-v', 'error', '-i', url, '-t', '1', '-f', 'null', '-']);
      playedAt = Date.now();
    });
    const sent = await alice.call<{ ms: number; sentAt: number; copyMs: number }>('sendFile', {
      ...to,
      path: file,
      id,
      timed: true,
      noWait: true,
      hashFirst,
    });
    await played;
    return {
      copy: sent.copyMs / 1000,
      engine: sent.ms / 1000,
      link: (linkAt - sent.sentAt) / 1000,
      played: (playedAt - sent.sentAt) / 1000,
    };
  } finally {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'kith-bench-first-'));
  const forget = onInterrupt(async () => rmSync(root, { recursive: true, force: true }));
  const started = Date.now();
  const load = [loadavg()[0]!];
  try {
    const file = await makeWebm(root, BYTES);
    const before: Timing[] = [];
    const after: Timing[] = [];
    for (let r = 0; r < RUNS; r++) {
      // Alternate which goes first, so that a load that changes during the run hits both.
      for (const hashFirst of r % 2 === 0 ? [true, false] : [false, true]) {
        process.stderr.write(`  run ${r + 1}: ${hashFirst ? 'hash first' : 'manifest v3'}...\n`);
        const t = await measure(root, file, hashFirst);
        process.stderr.write(`    ${JSON.stringify(t)}\n`);
        (hashFirst ? before : after).push(t);
        load.push(loadavg()[0]!);
      }
    }
    const pick = (ts: Timing[], k: keyof Timing) => median(ts.map((t) => t[k]));
    console.log(
      header(
        `${mib(BYTES)} WebM through 3 hops, time to first playable: manifest v3 ("kith") vs hashing the` +
          ` whole payload first ("baseline", the pre-r33 path); median of ${RUNS} run(s) each;` +
          ` bench took ${((Date.now() - started) / 1000).toFixed(0)} s;` +
          ` 1-min load average ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)} on the shared machine`,
      ),
    );
    console.log(
      row('hand-off until the engine stored it', pick(after, 'engine'), pick(before, 'engine'), 's', 2),
    );
    console.log(row('hand-off until bob has the link', pick(after, 'link'), pick(before, 'link'), 's', 2));
    console.log(
      row('hand-off until 1 s decoded from the link', pick(after, 'played'), pick(before, 'played'), 's', 2),
    );
    console.log(
      `copy into the outgoing directory before the hand-off (kith send --file; both): ` +
        `${pick([...after, ...before], 'copy').toFixed(2)} s`,
    );
  } finally {
    forget();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();

// `npm run fuzz`: every decoder's fuzz target, a million inputs each by default (not in CI; the
// seeded short runs are test/fuzz/*.test.ts). In process, one target after another; prints a
// progress line per target, then per-target counts of inputs, rejections by code, crashes, hangs
// and forgeries, and exits non-zero on any crash, hang or forgery.
//   npm run fuzz                                   all targets, 1,000,000 inputs each
//   npm run fuzz -- --runs 20000 --only onion-frame,manifest --seed 42
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { outcomeOf, type Target } from './harness.ts';
import { allTargets } from './targets/index.ts';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '1000000' },
    only: { type: 'string' },
    seed: { type: 'string' },
    /** Inputs per batch (one fc.check each; the progress line is printed between batches). */
    batch: { type: 'string', default: '20000' },
  },
});
const runs = Number(args.runs);
const batch = Math.min(Number(args.batch), runs);
const seed = args.seed ? Number(args.seed) : Date.now() >>> 0;
const only = args.only?.split(',');

interface Tally {
  name: string;
  inputs: number;
  decoded: number;
  rejected: Map<string, number>;
  crashes: number;
  hangs: number;
  forged: number;
  slowestMs: number;
  seconds: number;
  examples: string[];
  /** Inputs per target when the target runs fewer (a live server): said in the summary. */
  note?: string;
}

/** The tally of the target running now: an uncaught exception (a server's handler) is its crash. */
let current: Tally | undefined;
process.on('uncaughtException', (err) => {
  if (!current) throw err;
  current.crashes++;
  if (current.examples.length < 10) current.examples.push(`uncaught: ${err.stack ?? String(err)}`);
});

async function fuzz(target: Target, inputs: number): Promise<Tally> {
  const t: Tally = {
    name: target.name,
    inputs: 0,
    decoded: 0,
    rejected: new Map(),
    crashes: 0,
    hangs: 0,
    forged: 0,
    slowestMs: 0,
    seconds: 0,
    examples: [],
  };
  current = t;
  const start = performance.now();
  const failures = new Set<string>();
  const property = fc.asyncProperty(target.input, async (input) => {
    const o = await outcomeOf(target, input);
    t.inputs++;
    t.slowestMs = Math.max(t.slowestMs, o.ms);
    if (o.kind === 'decoded') t.decoded++;
    else if (o.kind === 'rejected') t.rejected.set(o.code, (t.rejected.get(o.code) ?? 0) + 1);
    else {
      const why = o.kind === 'hang' ? `hang: ${o.ms.toFixed(0)} ms` : `${o.kind}: ${o.why}`;
      if (o.kind === 'crash') t.crashes++;
      else if (o.kind === 'hang') t.hangs++;
      else t.forged++;
      // One example per distinct first line, with the input, so each can be replayed.
      const key = why.split('\n')[0];
      if (!failures.has(key) && t.examples.length < 10) {
        failures.add(key);
        t.examples.push(`${why}\n    input: ${fc.stringify(input).slice(0, 600)}`);
      }
    }
  });
  for (let done = 0, i = 0; done < inputs; i++) {
    const n = Math.min(batch, inputs - done);
    // Failures are tallied inside the property, which never fails, so nothing shrinks or stops.
    await fc.assert(property, { numRuns: n, seed: (seed + i * 7919) >>> 0, verbose: 0 });
    done += n;
    const s = (performance.now() - start) / 1000;
    process.stdout.write(
      `\r${target.name.padEnd(22)} ${done.toLocaleString('en').padStart(10)} / ${inputs.toLocaleString('en')}  ` +
        `${(done / s).toFixed(0).padStart(7)} /s  crashes ${t.crashes}  hangs ${t.hangs}  forged ${t.forged}   `,
    );
  }
  t.seconds = (performance.now() - start) / 1000;
  const codes = [...t.rejected.entries()].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`);
  process.stdout.write(
    `\n${target.name}: done, ${t.inputs} inputs in ${t.seconds.toFixed(0)} s, decoded ${t.decoded}, ` +
      `rejected ${codes.join(', ') || 0}; crashes ${t.crashes}, hangs ${t.hangs}, forged ${t.forged}, ` +
      `slowest ${t.slowestMs.toFixed(1)} ms\n`,
  );
  return t;
}

const started = Date.now();
console.log(`fuzz: seed ${seed}, ${runs.toLocaleString('en')} inputs per target`);
const tallies: Tally[] = [];
const { entries, stop } = await allTargets();
for (const entry of entries) {
  if (only && !only.includes(entry.target.name)) continue;
  const inputs = entry.runsFor ? entry.runsFor(runs) : runs;
  const tally = await fuzz(entry.target, inputs);
  if (entry.note) tally.note = entry.note;
  tallies.push(tally);
}
await stop();

console.log('\n=== fuzz summary');
console.log(
  `${'target'.padEnd(22)} ${'inputs'.padStart(10)} ${'decoded'.padStart(9)} ${'rejected'.padStart(9)}  crashes hangs forged  slowest  seconds`,
);
for (const t of tallies) {
  const rejected = [...t.rejected.values()].reduce((a, b) => a + b, 0);
  console.log(
    `${t.name.padEnd(22)} ${t.inputs.toLocaleString('en').padStart(10)} ${String(t.decoded).padStart(9)} ` +
      `${String(rejected).padStart(9)}  ${String(t.crashes).padStart(7)} ${String(t.hangs).padStart(5)} ` +
      `${String(t.forged).padStart(6)} ${t.slowestMs.toFixed(1).padStart(6)} ms ${t.seconds.toFixed(0).padStart(6)}` +
      (t.note ? `  (${t.note})` : ''),
  );
  const codes = [...t.rejected.entries()].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`);
  if (codes.length > 0) console.log(`${''.padEnd(23)}rejections: ${codes.join(', ')}`);
}
for (const t of tallies) for (const e of t.examples) console.log(`\n${t.name}: ${e}`);
const bad = tallies.reduce((n, t) => n + t.crashes + t.hangs + t.forged, 0);
const total = tallies.reduce((n, t) => n + t.inputs, 0);
console.log(
  `\nfuzz: ${total.toLocaleString('en')} inputs over ${tallies.length} targets in ${((Date.now() - started) / 1000).toFixed(0)} s, ` +
    `seed ${seed}: ${bad === 0 ? 'no crash, hang or forgery' : `${bad} FAILED`}`,
);
process.exitCode = bad === 0 ? 0 : 1;

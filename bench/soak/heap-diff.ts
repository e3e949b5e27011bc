// What grew between two heap snapshots of the same process (bench/soak/heap.ts writes them), and
// what holds it.
//   node --import tsx bench/soak/heap-diff.ts A.heapsnapshot B.heapsnapshot [--top 30] [--paths 8] [--depth 10]
// Prints, per kind of node (constructor name; closures by function; strings, code... by type),
// the count and self-size difference B - A, the top --top by size growth, and how many of B's
// nodes are new (their id is not in A: V8 keeps ids stable within one process, so "new and still
// alive after the GC before B" is what was retained in between). Then, for the top --paths
// growers, the retainer paths of their new nodes, walked backwards --depth steps towards the GC
// roots (strong edges only, nearest the roots first), grouped by shape: a Map in some class, an
// array, a closure's context - the holder to look for in the source.
import { parseArgs } from 'node:util';
import { byHolder, pathOf, upToHolder, type Tally } from './holders.ts';
import { HeapSnapshot } from './snapshot.ts';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '30' },
    paths: { type: 'string', default: '8' },
    depth: { type: 'string', default: '10' },
  },
});
if (positionals.length !== 2) {
  console.error('usage: heap-diff.ts A.heapsnapshot B.heapsnapshot [--top 30] [--paths 8] [--depth 10]');
  process.exit(2);
}
const [fileA, fileB] = positionals as [string, string];
const top = Number(args.top);
const pathsFor = Number(args.paths);
const depth = Number(args.depth);
/** New nodes per kind whose paths are walked: enough to see which holder dominates. */
const PATH_SAMPLE = 2000;

function tally(snap: HeapSnapshot): Map<string, Tally> {
  const byKey = new Map<string, Tally>();
  for (let n = 0; n < snap.nodeCount; n++) {
    const key = snap.key(n);
    const t = byKey.get(key) ?? { count: 0, size: 0 };
    t.count++;
    t.size += snap.selfSize(n);
    byKey.set(key, t);
  }
  return byKey;
}

// A is read, tallied and dropped before B is read: two snapshots at once would double the memory.
let a: HeapSnapshot | undefined = new HeapSnapshot(fileA);
const tallyA = tally(a);
const idsA = new Set<number>();
for (let n = 0; n < a.nodeCount; n++) idsA.add(a.id(n));
const holdersA = byHolder(a, depth);
a = undefined;

const b = new HeapSnapshot(fileB);
const tallyB = tally(b);
const holdersB = byHolder(b, depth);
/** B's nodes whose id A did not have, by kind (their ordinals in B). */
const freshNodes = new Map<string, number[]>();
for (let n = 0; n < b.nodeCount; n++) {
  if (idsA.has(b.id(n))) continue;
  const key = b.key(n);
  const list = freshNodes.get(key) ?? [];
  list.push(n);
  freshNodes.set(key, list);
}
/** Evenly spread over the list, not its first ones: nodes next to each other were made together. */
function spread(list: number[]): number[] {
  const step = Math.max(1, list.length / PATH_SAMPLE);
  const out: number[] = [];
  for (let i = 0; i < list.length; i += step) out.push(list[Math.floor(i)]!);
  return out;
}
const fresh = new Map(
  [...freshNodes].map(([key, list]) => [key, { count: list.length, sample: spread(list) }]),
);

const sum = (m: Map<string, Tally>): Tally =>
  [...m.values()].reduce((s, t) => ({ count: s.count + t.count, size: s.size + t.size }), {
    count: 0,
    size: 0,
  });
const kib = (bytes: number): string => (bytes / 1024).toFixed(1);
const totalA = sum(tallyA);
const totalB = sum(tallyB);
console.log(
  `A: ${totalA.count} nodes, ${kib(totalA.size)} KiB; B: ${totalB.count} nodes, ${kib(totalB.size)} KiB; ` +
    `growth ${totalB.count - totalA.count} nodes, ${kib(totalB.size - totalA.size)} KiB`,
);

const rows = [...new Set([...tallyA.keys(), ...tallyB.keys()])].map((key) => {
  const ta = tallyA.get(key) ?? { count: 0, size: 0 };
  const tb = tallyB.get(key) ?? { count: 0, size: 0 };
  return {
    key,
    dCount: tb.count - ta.count,
    dSize: tb.size - ta.size,
    sizeB: tb.size,
    fresh: fresh.get(key)?.count ?? 0,
  };
});
rows.sort((x, y) => y.dSize - x.dSize);
console.log(
  `\n${'Δ KiB'.padStart(10)} ${'Δ count'.padStart(9)} ${'new'.padStart(9)} ${'B KiB'.padStart(10)}  kind`,
);
for (const r of rows.slice(0, top)) {
  console.log(
    `${kib(r.dSize).padStart(10)} ${String(r.dCount).padStart(9)} ${String(r.fresh).padStart(9)} ` +
      `${kib(r.sizeB).padStart(10)}  ${r.key}`,
  );
}

// The growth by owner: what the per-kind table spreads over Buffer, string, Object... summed by
// the holder each node hangs from, in A and in B.
const rowsByHolder = [...new Set([...holdersA.keys(), ...holdersB.keys()])].map((label) => {
  const ha = holdersA.get(label) ?? { count: 0, size: 0 };
  const hb = holdersB.get(label) ?? { count: 0, size: 0 };
  return { label, dCount: hb.count - ha.count, dSize: hb.size - ha.size, sizeA: ha.size, sizeB: hb.size };
});
rowsByHolder.sort((x, y) => y.dSize - x.dSize);
console.log(`\nBy the first named holder on each node's path to the roots (self sizes summed):`);
console.log(
  `${'Δ KiB'.padStart(10)} ${'Δ nodes'.padStart(9)} ${'A KiB'.padStart(10)} ${'B KiB'.padStart(10)}  holder`,
);
for (const r of rowsByHolder.slice(0, top)) {
  console.log(
    `${kib(r.dSize).padStart(10)} ${String(r.dCount).padStart(9)} ${kib(r.sizeA).padStart(10)} ` +
      `${kib(r.sizeB).padStart(10)}  ${r.label}`,
  );
}

// Then the top growing kinds one by one: their new nodes' paths up to the holder, by shape.
for (const r of rows.slice(0, pathsFor)) {
  const f = fresh.get(r.key);
  if (!f) continue;
  const groups = new Map<string, { count: number; example: number }>();
  for (const n of f.sample) {
    const shape = upToHolder(pathOf(b, n, depth))
      .map((s) => s.text)
      .join('  <-  ');
    const g = groups.get(shape) ?? { count: 0, example: n };
    g.count++;
    groups.set(shape, g);
  }
  console.log(`\n== ${r.key}: +${kib(r.dSize)} KiB, ${f.count} new; paths of ${f.sample.length} of them:`);
  for (const [shape, g] of [...groups.entries()].sort((x, y) => y[1].count - x[1].count).slice(0, 4)) {
    console.log(`  ${g.count}x  (e.g. @${b.id(g.example)})  ${r.key}  <-  ${shape}`);
  }
}

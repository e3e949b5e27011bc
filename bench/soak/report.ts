// The soak's per-process figures from its samples file, also while it is still running (a
// partial look: the windows compared are then the one after warm-up and the latest one).
//   node --import tsx bench/soak/report.ts /tmp/kith-soak-samples.jsonl [--warmup-minutes 10] [--window-minutes 10]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { judge, verdictLine, type Sample } from './verdict.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'warmup-minutes': { type: 'string', default: '10' },
    'window-minutes': { type: 'string', default: '10' },
  },
});
const byPid = new Map<number, { name: string; list: Sample[] }>();
for (const line of readFileSync(positionals[0], 'utf8').split('\n')) {
  if (!line) continue;
  const s = JSON.parse(line) as Sample & { pid: number; name: string; heap?: boolean };
  if (s.heap) continue; // a heap-after-GC line (heap.ts), not a process sample
  const entry = byPid.get(s.pid) ?? { name: s.name, list: [] };
  byPid.set(s.pid, entry);
  entry.list.push({ t: s.t, rssKiB: s.rssKiB, fds: s.fds });
}
const last = Math.max(...[...byPid.values()].map((e) => e.list.at(-1)!.t));
const window = {
  warmupEnd: Number(values['warmup-minutes']) * 60,
  trafficEnd: last,
  length: Number(values['window-minutes']) * 60,
};
console.log(`samples up to ${(last / 60).toFixed(1)} min`);
for (const [pid, e] of byPid) console.log(verdictLine(judge(`${e.name}[${pid}]`, e.list, window)));

// Summarises V8 CPU profiles (node --cpu-prof): where the sampled time went, by package or source
// folder (self time) and by function (self and total time), so a profile can be read as text.
// Run: node --import tsx bench/lib/cpuprofile.ts FILE.cpuprofile [--top 25] [--focus NAME]
//   --focus NAME: also the total time of every function whose name contains NAME, with callees.
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Where a frame's code lives: an npm package, a folder of ours, node's own, or V8's markers. */
export function area(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : `(native) ${fn}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return url;
  const ours = /\/(agent|gateway|store|common|config|bench|cli)\/((?:[^/]+\/)?)/.exec(url);
  if (ours) return `${ours[1]}/${ours[2]}`.replace(/\/$/, '');
  return url;
}

export function summarise(p: Profile, top = 25, focus?: string): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = [...selfUs].filter(([id]) => byId.get(id)!.callFrame.functionName === '(idle)');
  const idleUs = idle.reduce((a, [, us]) => a + us, 0);
  const busy = total - idleUs;
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1)}%`.padStart(6);
  const key = (n: Node): string =>
    `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(node_modules\/)?/, '')}:${n.callFrame.lineNumber + 1}`;

  const areas = new Map<string, number>();
  const selfByFn = new Map<string, number>();
  const totalByFn = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    if (n.callFrame.functionName === '(idle)') continue;
    const a = area(n.callFrame.url, n.callFrame.functionName);
    areas.set(a, (areas.get(a) ?? 0) + us);
    selfByFn.set(key(n), (selfByFn.get(key(n)) ?? 0) + us);
    // Total time: each function on the stack once per sample.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = key(byId.get(cur)!);
      if (seen.has(k)) continue;
      seen.add(k);
      totalByFn.set(k, (totalByFn.get(k) ?? 0) + us);
    }
  }
  const lines: string[] = [];
  lines.push(
    `wall ${((p.endTime - p.startTime) / 1e6).toFixed(1)} s, sampled busy ${(busy / 1e6).toFixed(1)} s ` +
      `(${((100 * busy) / total).toFixed(0)}% of samples not idle); shares below are of busy time`,
  );
  const sorted = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]);
  lines.push('', 'self time by area:');
  for (const [a, us] of sorted(areas).slice(0, top)) lines.push(`  ${pct(us)}  ${a}`);
  lines.push('', 'self time by function:');
  for (const [f, us] of sorted(selfByFn).slice(0, top)) lines.push(`  ${pct(us)}  ${f}`);
  lines.push('', 'total time by function (ours only):');
  for (const [f, us] of sorted(totalByFn)
    .filter(([f]) => !/node_modules|^\(|^ |node:/.test(f.split(' ').slice(1).join(' ') || f))
    .slice(0, top))
    lines.push(`  ${pct(us)}  ${f}`);
  if (focus) {
    lines.push('', `total time of functions named *${focus}*:`);
    for (const [f, us] of sorted(totalByFn).filter(([f]) => f.split(' ')[0]!.includes(focus)))
      lines.push(`  ${pct(us)}  ${f}`);
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: cpuprofile.ts FILE.cpuprofile [--top N] [--focus NAME]');
    process.exit(1);
  }
  const i = process.argv.indexOf('--top');
  const f = process.argv.indexOf('--focus');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  console.log(
    summarise(profile, i > 0 ? Number(process.argv[i + 1]) : 25, f > 0 ? process.argv[f + 1] : undefined),
  );
}

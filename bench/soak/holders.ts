// Who holds a node of a heap snapshot: its path towards the GC roots (strong edges, the retainer
// nearest the roots at each step, as DevTools shows it), and the first named object on that path.
import type { HeapSnapshot } from './snapshot.ts';

/**
 * Built-in containers and the engine's own objects: a path through them says how, not who. The
 * holder named for a node is the first object on its path whose constructor is none of these
 * (a class of ours or of a library: SentPackets, Relay, ...).
 */
const GENERIC =
  /^(Object|Array|Map|Set|WeakMap|WeakSet|WeakRef|Buffer|Uint8Array|ArrayBuffer|DataView|Promise|Generator|AsyncGenerator|Timeout|TimersList|Immediate|Error|system \/ .*|global.*|\(.*)$/;

export interface Step {
  /** "Kind .edge": the retaining node's kind and the edge by which it holds the one before. */
  text: string;
  /** Whether the retaining node is a named holder (see GENERIC). */
  named: boolean;
}

export interface Tally {
  count: number;
  size: number;
}

/** The path from n towards the roots, at most `depth` steps, nearest the node first. */
export function pathOf(snap: HeapSnapshot, n: number, depth: number): Step[] {
  const steps: Step[] = [];
  for (let i = 0; i < depth; i++) {
    const r = snap.retainers(n)[0];
    if (!r || snap.distance(r.from) === 0) break;
    const edge = r.type === 'element' || r.type === 'hidden' ? r.name : '.' + r.name;
    // Indexes dropped (elements "[12]", a hash table's slots ".12"): the 10,000 entries of one
    // Map then share one shape.
    const text = `${snap.key(r.from)} ${edge.replace(/^(\[\d+\]|\.\d+)$/, '[]')}`;
    steps.push({ text, named: snap.type(r.from) === 'object' && !GENERIC.test(snap.name(r.from)) });
    n = r.from;
  }
  return steps;
}

/** The path up to its first named holder (all of it if none is within the steps walked). */
export function upToHolder(steps: Step[]): Step[] {
  const i = steps.findIndex((s) => s.named);
  return i < 0 ? steps : steps.slice(0, i + 1);
}

/** "SentPackets .packets", or "(no named holder) <last step>". */
export function holderOf(snap: HeapSnapshot, n: number, depth: number): string {
  const last = upToHolder(pathOf(snap, n, depth)).at(-1);
  return last?.named ? last.text : `(no named holder) ${last?.text ?? ''}`;
}

/**
 * Every node's self size summed by its holder. Not V8's retained size (that needs the dominator
 * tree): a node reachable through two holders counts for the one nearer the roots only. It is
 * enough to see which Map or array the growth hangs from. Objects shared by a whole module (its
 * code, class prototypes) can move from one holder to another between two snapshots when a path
 * nearer the roots appears (ModuleWrap in A, a server's listener in B): a holder whose Δ KiB is
 * large but whose Δ nodes is small is such a move, not growth.
 */
export function byHolder(snap: HeapSnapshot, depth: number, nodes?: Iterable<number>): Map<string, Tally> {
  const out = new Map<string, Tally>();
  const add = (n: number): void => {
    const label = holderOf(snap, n, depth);
    const t = out.get(label) ?? { count: 0, size: 0 };
    t.count++;
    t.size += snap.selfSize(n);
    out.set(label, t);
  };
  if (nodes) for (const n of nodes) add(n);
  else for (let n = 0; n < snap.nodeCount; n++) add(n);
  return out;
}

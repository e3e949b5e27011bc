// One V8 heap snapshot (.heapsnapshot, the JSON that HeapProfiler.takeHeapSnapshot writes), read
// into flat arrays with the few look-ups a diff needs: each node's kind, size and id, its
// retainers (edges walked backwards) and its distance from the GC roots.
// The format: `nodes` is one flat array, `snapshot.meta.node_fields` long per node; a node's
// outgoing edges follow each other in `edges` (`edge_fields` long each, `edge_count` of them per
// node, in node order); an edge's `to_node` is the index of the target's first field in `nodes`;
// names are indexes into `strings`.
import { readFileSync } from 'node:fs';

interface RawSnapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

export interface Retainer {
  /** The retaining node's ordinal. */
  from: number;
  /** The edge's type (property, element, context, internal, hidden, shortcut). */
  type: string;
  /** The property's name or the element's index. */
  name: string;
}

export class HeapSnapshot {
  readonly nodeCount: number;
  private readonly raw: RawSnapshot;
  private readonly nodeWidth: number;
  private readonly edgeWidth: number;
  private readonly nodeTypes: string[];
  private readonly edgeTypes: string[];
  private readonly f: { type: number; name: number; id: number; size: number; edgeCount: number };
  private readonly e: { type: number; name: number; to: number };
  /** Index of each node's first outgoing edge in `edges` (in edges, not fields). */
  private readonly firstEdge: Uint32Array;
  /** Retainers as compressed rows: node n's retaining edges are retEdges[retStart[n]..retStart[n+1]). */
  private readonly retStart: Uint32Array;
  private readonly retEdges: Uint32Array;
  /** The ordinal of the node each edge leaves from. */
  private readonly edgeFrom: Uint32Array;
  private readonly distances: Uint32Array;

  constructor(file: string) {
    this.raw = JSON.parse(readFileSync(file, 'utf8')) as RawSnapshot;
    const meta = this.raw.snapshot.meta;
    const nf = meta.node_fields;
    const ef = meta.edge_fields;
    this.nodeWidth = nf.length;
    this.edgeWidth = ef.length;
    this.nodeTypes = meta.node_types[0];
    this.edgeTypes = meta.edge_types[0];
    this.f = {
      type: nf.indexOf('type'),
      name: nf.indexOf('name'),
      id: nf.indexOf('id'),
      size: nf.indexOf('self_size'),
      edgeCount: nf.indexOf('edge_count'),
    };
    this.e = { type: ef.indexOf('type'), name: ef.indexOf('name_or_index'), to: ef.indexOf('to_node') };
    this.nodeCount = this.raw.nodes.length / this.nodeWidth;

    const edgeTotal = this.raw.edges.length / this.edgeWidth;
    this.firstEdge = new Uint32Array(this.nodeCount + 1);
    this.edgeFrom = new Uint32Array(edgeTotal);
    for (let n = 0, edge = 0; n < this.nodeCount; n++) {
      this.firstEdge[n] = edge;
      const count = this.raw.nodes[n * this.nodeWidth + this.f.edgeCount];
      for (let i = 0; i < count; i++) this.edgeFrom[edge + i] = n;
      edge += count;
    }
    this.firstEdge[this.nodeCount] = edgeTotal;

    // Retainers: count per target, prefix sums, then fill (two passes, no per-node arrays).
    this.retStart = new Uint32Array(this.nodeCount + 1);
    for (let edge = 0; edge < edgeTotal; edge++) this.retStart[this.target(edge) + 1]++;
    for (let n = 0; n < this.nodeCount; n++) this.retStart[n + 1] += this.retStart[n];
    this.retEdges = new Uint32Array(edgeTotal);
    const fill = this.retStart.slice(0, this.nodeCount);
    for (let edge = 0; edge < edgeTotal; edge++) this.retEdges[fill[this.target(edge)]++] = edge;

    this.distances = this.distancesFromRoot();
  }

  private target(edge: number): number {
    return this.raw.edges[edge * this.edgeWidth + this.e.to] / this.nodeWidth;
  }

  private edgeType(edge: number): string {
    return this.edgeTypes[this.raw.edges[edge * this.edgeWidth + this.e.type]];
  }

  /**
   * Breadth-first from node 0 (the synthetic root), over strong edges only. Why: walking a
   * retainer path backwards, the retainer nearest the roots is the one that keeps the object
   * alive (DevTools picks the same); a weak edge keeps nothing alive.
   */
  private distancesFromRoot(): Uint32Array {
    const dist = new Uint32Array(this.nodeCount).fill(0xffffffff);
    let frontier = [0];
    dist[0] = 0;
    for (let d = 1; frontier.length > 0; d++) {
      const next: number[] = [];
      for (const n of frontier) {
        for (let edge = this.firstEdge[n]; edge < this.firstEdge[n + 1]; edge++) {
          if (this.edgeType(edge) === 'weak') continue;
          const to = this.target(edge);
          if (dist[to] !== 0xffffffff) continue;
          dist[to] = d;
          next.push(to);
        }
      }
      frontier = next;
    }
    return dist;
  }

  type(n: number): string {
    return this.nodeTypes[this.raw.nodes[n * this.nodeWidth + this.f.type]];
  }

  name(n: number): string {
    return this.raw.strings[this.raw.nodes[n * this.nodeWidth + this.f.name]];
  }

  id(n: number): number {
    return this.raw.nodes[n * this.nodeWidth + this.f.id];
  }

  selfSize(n: number): number {
    return this.raw.nodes[n * this.nodeWidth + this.f.size];
  }

  distance(n: number): number {
    return this.distances[n];
  }

  /**
   * What a node is counted as. Objects by constructor name; closures by function name; strings,
   * numbers and code by their type alone (their "name" is their content).
   */
  key(n: number): string {
    const type = this.type(n);
    switch (type) {
      case 'object':
        return this.name(n);
      case 'closure':
        return `${this.name(n) || '(anonymous)'}()`;
      case 'native':
      case 'hidden':
      case 'array':
      case 'synthetic':
        return `(${type}) ${this.name(n)}`.trim();
      default:
        return `(${type})`;
    }
  }

  /** The node's outgoing edges (what it holds), weak ones included. */
  edges(n: number): { to: number; type: string; name: string }[] {
    const list = [];
    for (let edge = this.firstEdge[n]; edge < this.firstEdge[n + 1]; edge++) {
      const type = this.edgeType(edge);
      list.push({ to: this.target(edge), type, name: this.edgeName(edge, type) });
    }
    return list;
  }

  private edgeName(edge: number, type: string): string {
    const raw = this.raw.edges[edge * this.edgeWidth + this.e.name];
    return type === 'element' || type === 'hidden' ? `[${raw}]` : this.raw.strings[raw];
  }

  /** The node's strong retainers (weak edges skipped), nearest the roots first. */
  retainers(n: number): Retainer[] {
    const list: Retainer[] = [];
    for (let i = this.retStart[n]; i < this.retStart[n + 1]; i++) {
      const edge = this.retEdges[i];
      const type = this.edgeType(edge);
      if (type === 'weak') continue;
      list.push({ from: this.edgeFrom[edge], type, name: this.edgeName(edge, type) });
    }
    return list.sort((a, b) => this.distance(a.from) - this.distance(b.from));
  }
}

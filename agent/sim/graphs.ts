/** Trust graphs for the simulator: undirected edges between agent indexes, from a seeded RNG. */

export type Edge = [number, number];

/** Deterministic PRNG (mulberry32), so a simulation run can be repeated. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function addEdge(adj: Set<number>[], edges: Edge[], a: number, b: number): boolean {
  if (a === b || adj[a].has(b)) return false;
  adj[a].add(b);
  adj[b].add(a);
  edges.push([a, b]);
  return true;
}

/** Watts–Strogatz: a ring where each agent trusts its k nearest, each edge rewired with probability beta. */
export function smallWorld(n: number, k: number, beta: number, random: () => number): Edge[] {
  const adj = Array.from({ length: n }, () => new Set<number>());
  const edges: Edge[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 1; j <= k / 2; j++) {
      let b = (i + j) % n;
      if (random() < beta) {
        for (let tries = 0; tries < 10; tries++) {
          const c = Math.floor(random() * n);
          if (c !== i && !adj[i].has(c)) {
            b = c;
            break;
          }
        }
      }
      addEdge(adj, edges, i, b);
    }
  }
  return edges;
}

/** Barabási–Albert: each new agent trusts m existing ones, preferring the well-connected (a few hubs). */
export function scaleFree(n: number, m: number, random: () => number): Edge[] {
  const adj = Array.from({ length: n }, () => new Set<number>());
  const edges: Edge[] = [];
  const ends: number[] = [];
  for (let i = 0; i <= m; i++) {
    for (let j = 0; j < i; j++) if (addEdge(adj, edges, i, j)) ends.push(i, j);
  }
  for (let i = m + 1; i < n; i++) {
    let added = 0;
    while (added < m) {
      const target = ends[Math.floor(random() * ends.length)];
      if (addEdge(adj, edges, i, target)) {
        ends.push(i, target);
        added++;
      }
    }
  }
  return edges;
}

/** Trust graphs for the spam simulation, as adjacency lists, degree capped (a person links with at most ~150). */

/** Barabási–Albert: each new agent trusts m existing ones, preferring well-connected ones below the cap. */
export function barabasiAlbert(n: number, m: number, cap: number, random: () => number): number[][] {
  const adj: Set<number>[] = Array.from({ length: n }, () => new Set());
  const ends: number[] = [];
  const link = (a: number, b: number) => {
    if (a === b || adj[a].has(b) || adj[a].size >= cap || adj[b].size >= cap) return false;
    adj[a].add(b);
    adj[b].add(a);
    ends.push(a, b);
    return true;
  };
  for (let i = 0; i <= m; i++) for (let j = 0; j < i; j++) link(i, j);
  for (let i = m + 1; i < n; i++) {
    let added = 0;
    for (let tries = 0; added < m && tries < 50 * m; tries++) {
      if (link(i, ends[Math.floor(random() * ends.length)])) added++;
    }
  }
  return adj.map((s) => [...s]);
}

/**
 * Kleinberg's small world: a side×side torus lattice, each agent trusting its 4 lattice
 * neighbours plus `q` long-range contacts chosen with probability ∝ distance^-2 (the exponent at
 * which greedy routing works), degree capped.
 */
export function kleinberg(side: number, q: number, cap: number, random: () => number): number[][] {
  const n = side * side;
  const adj: Set<number>[] = Array.from({ length: n }, () => new Set());
  const link = (a: number, b: number) => {
    if (a === b || adj[a].has(b) || adj[a].size >= cap || adj[b].size >= cap) return;
    adj[a].add(b);
    adj[b].add(a);
  };
  const at = (x: number, y: number) => (((y + side) % side) * side + ((x + side) % side)) as number;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      link(at(x, y), at(x + 1, y));
      link(at(x, y), at(x, y + 1));
    }
  }
  // Distances d = 1..side/2 with weight (number of cells at d ≈ 4d) × d^-2 = 4/d: sample d ∝ 1/d.
  const maxD = Math.floor(side / 2);
  const cdf: number[] = [];
  let total = 0;
  for (let d = 1; d <= maxD; d++) cdf.push((total += 1 / d));
  for (let i = 0; i < n; i++) {
    const x = i % side;
    const y = Math.floor(i / side);
    for (let k = 0; k < q; k++) {
      const r = random() * total;
      let d = 1;
      while (cdf[d - 1] < r) d++;
      // A random cell at lattice (L1) distance d.
      const dx = Math.floor(random() * (d + 1));
      const dy = d - dx;
      link(i, at(x + (random() < 0.5 ? dx : -dx), y + (random() < 0.5 ? dy : -dy)));
    }
  }
  return adj.map((s) => [...s]);
}

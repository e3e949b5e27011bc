import type { Fingerprint } from '../../common/ids.ts';
import { FrameType } from '../onion/wire.ts';
import type { Edge } from './graphs.ts';
import type { Simulation } from './sim.ts';

export interface DiscoveryStats {
  trials: number;
  found: number;
  /** Discovery frames (requests + responses) per discovery. */
  framesPerDiscovery: number;
  /** Mean hops of the paths found. */
  meanHops: number;
}

function discoveryFrames(sim: Simulation): number {
  const n = sim.network.framesByType;
  return (n.get(FrameType.discoverRequest) ?? 0) + (n.get(FrameType.discoverResponse) ?? 0);
}

/** Runs `trials` discoveries between random pairs (one at a time), with cold caches unless warm. */
export async function measureDiscovery(sim: Simulation, pairs: [number, number][]): Promise<DiscoveryStats> {
  const before = discoveryFrames(sim);
  let found = 0;
  let hops = 0;
  for (const [from, to] of pairs) {
    const paths = await sim.agents[from].engine.discovery.find(sim.agents[to].entity as Fingerprint);
    await sim.network.idle();
    if (paths.length > 0) {
      found++;
      hops += Math.min(...paths.map((p) => p.agents.length));
    }
  }
  return {
    trials: pairs.length,
    found,
    framesPerDiscovery: (discoveryFrames(sim) - before) / pairs.length,
    meanHops: found ? hops / found : 0,
  };
}

/**
 * The naive baseline: flood the question to every agent with duplicate suppression only (no hop
 * limit, no cache, no early stop), each agent forwarding once to every neighbour but the sender;
 * the answer returns along the flood tree. Counted on the graph, frame for frame.
 */
export function naiveFloodFrames(
  n: number,
  edges: readonly Edge[],
  from: number,
  to: number,
): { frames: number; found: boolean; hops: number } {
  const adj = Array.from({ length: n }, () => [] as number[]);
  for (const [a, b] of edges) {
    adj[a].push(b);
    adj[b].push(a);
  }
  const parent = new Array<number>(n).fill(-2);
  parent[from] = -1;
  const queue = [from];
  let frames = 0;
  for (let q = 0; q < queue.length; q++) {
    const x = queue[q];
    for (const y of adj[x]) {
      if (y === parent[x]) continue;
      frames++;
      if (parent[y] === -2) {
        parent[y] = x;
        queue.push(y);
      }
    }
  }
  const found = parent[to] !== -2 && to !== from;
  let hops = 0;
  if (found) for (let x = to; x !== from; x = parent[x]) hops++;
  return { frames: frames + hops, found, hops };
}

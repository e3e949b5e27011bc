// Route discovery in the simulator: success rate and frames per discovery on 1,000- and
// 10,000-agent trust graphs, next to a naive full flood measured on the same graphs and pairs.
// Run: node --import tsx bench/discovery/run.ts [--sizes 1000,10000] [--trials 30]
import '../../common/polyfill.ts';
import { Simulation } from '../../agent/sim/sim.ts';
import { scaleFree, seededRandom, smallWorld, type Edge } from '../../agent/sim/graphs.ts';
import { measureDiscovery, naiveFloodFrames } from '../../agent/sim/measure.ts';
import { MAX_HOPS } from '../../agent/onion/layers.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const sizes = arg('sizes', '1000,10000').split(',').map(Number);
const trials = Number(arg('trials', '30'));

async function run(n: number, graph: string, edges: Edge[], random: () => number): Promise<void> {
  const t0 = Date.now();
  const sim = new Simulation({ quiesce: true });
  sim.addAgents(n);
  sim.connectEdges(edges);
  await sim.start();
  const setup = Date.now() - t0;
  const pairs: [number, number][] = Array.from({ length: trials }, () => {
    const a = Math.floor(random() * n);
    return [a, (a + 1 + Math.floor(random() * (n - 1))) % n];
  });
  const t1 = Date.now();
  const cold = await measureDiscovery(sim, pairs);
  const coldMs = Date.now() - t1;
  // Warm: other askers look for the same targets; relays answer from their path caches.
  const warmPairs = pairs
    .map(([, b]) => [Math.floor(random() * n), b] as [number, number])
    .filter(([a, b]) => a !== b);
  const warm = await measureDiscovery(sim, warmPairs);
  const floods = pairs.map(([a, b]) => naiveFloodFrames(n, edges, a, b));
  const floodFrames = floods.reduce((s, f) => s + f.frames, 0) / floods.length;
  const floodFound = floods.filter((f) => f.found).length / floods.length;
  // An onion carries at most MAX_HOPS hops: targets farther than that cannot be reached by any method.
  const reachable = floods.filter((f) => f.found && f.hops <= MAX_HOPS).length / floods.length;
  await sim.stop();
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  console.log(
    [
      `${String(n).padStart(6)} agents ${graph.padEnd(11)} edges ${String(edges.length).padStart(6)}`,
      `kith cold: found ${pct(cold.found / cold.trials)} ${cold.framesPerDiscovery.toFixed(0).padStart(6)} frames/discovery, ${cold.meanHops.toFixed(1)} hops, ${(coldMs / trials).toFixed(0)} ms each`,
      `warm: found ${pct(warm.found / Math.max(1, warm.trials))} ${warm.framesPerDiscovery.toFixed(0).padStart(6)} frames`,
      `naive flood: found ${pct(floodFound)} (within ${MAX_HOPS} hops ${pct(reachable)}) ${floodFrames.toFixed(0).padStart(6)} frames`,
      `ratio flood/kith cold ${(floodFrames / cold.framesPerDiscovery).toFixed(1)}x, warm ${(floodFrames / Math.max(1, warm.framesPerDiscovery)).toFixed(1)}x`,
      `(setup ${(setup / 1000).toFixed(1)} s)`,
    ].join(' | '),
  );
}

for (const n of sizes) {
  const random = seededRandom(n);
  await run(n, 'small world', smallWorld(n, 6, 0.1, random), random);
  await run(n, 'scale free', scaleFree(n, 3, random), random);
}

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Simulation } from '../../agent/sim/sim.ts';
import { scaleFree, seededRandom, smallWorld } from '../../agent/sim/graphs.ts';
import { measureDiscovery, naiveFloodFrames } from '../../agent/sim/measure.ts';
import { newMessageId, recordEvents } from '../delivery/helpers.ts';

const N = 200;

for (const [name, makeEdges] of [
  ['small world', (r: () => number) => smallWorld(N, 6, 0.1, r)],
  ['scale free', (r: () => number) => scaleFree(N, 3, r)],
] as const) {
  describe(`simulator: ${N} agents, ${name}`, () => {
    const random = seededRandom(42);
    const edges = makeEdges(random);
    const sim = new Simulation({ quiesce: true });
    beforeAll(async () => {
      sim.addAgents(N);
      sim.connectEdges(edges);
      await sim.start();
    });
    afterAll(async () => sim.stop());

    test('discovery finds paths between random agents with fewer frames than a full flood', async () => {
      const pairs: [number, number][] = Array.from({ length: 20 }, () => {
        const a = Math.floor(random() * N);
        return [a, (a + 1 + Math.floor(random() * (N - 1))) % N];
      });
      const stats = await measureDiscovery(sim, pairs);
      const flood = pairs.map(([a, b]) => naiveFloodFrames(N, edges, a, b).frames);
      const floodMean = flood.reduce((x, y) => x + y, 0) / flood.length;
      expect(stats.found / stats.trials).toBeGreaterThanOrEqual(0.95);
      expect(stats.framesPerDiscovery).toBeLessThan(floodMean);
      expect(stats.meanHops).toBeLessThanOrEqual(7);
    });

    test('messages reach random agents across the graph', async () => {
      const a = sim.agents[0];
      const rec = recordEvents(a.engine);
      const targets = [50, 120, 199].map((i) => sim.agents[i]);
      for (const t of targets) {
        const id = newMessageId();
        await a.engine.send({
          id,
          to: t.entity,
          source: { kind: 'bytes', data: Buffer.from(`to ${t.entity}`) },
        });
        await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);
        expect(t.inbox.at(-1)?.data?.toString()).toBe(`to ${t.entity}`);
      }
    });
  });
}

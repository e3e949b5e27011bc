import { afterEach, describe, expect, jest, test } from '@jest/globals';
import { waitAfterHeld } from '../../agent/delivery/decide.ts';
import { PathCache, type CachedPath } from '../../agent/routing/path-cache.ts';
import type { PathEntry } from '../../agent/routing/path.ts';
import { Simulation } from '../../agent/sim/sim.ts';
import type { AgentId, Fingerprint } from '../../common/ids.ts';
import { ENGINE_FAKE_TIMERS, newMessageId, recordEvents } from './helpers.ts';

describe('which path the sender uses, and how long it waits', () => {
  let sim: Simulation | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });

  test('PathCache.dropWhere forgets every path through a matching agent', () => {
    const cache = new PathCache(60_000);
    const entry = (agent: string) =>
      ({ agent: agent as AgentId, expiresAt: Date.now() + 60_000 }) as PathEntry;
    const target = 'AA'.repeat(20) as Fingerprint;
    cache.add(target, [entry('b'), entry('c'), entry('d')]);
    cache.add(target, [entry('e'), entry('f'), entry('d')]);
    expect(cache.dropWhere((a) => a === 'c')).toBe(1);
    expect(cache.get(target).map((p: CachedPath) => p.agents)).toEqual([['e', 'f', 'd']]);
    cache.dropAgent('f' as AgentId);
    expect(cache.get(target)).toEqual([]);
  });

  test('a cached path through an agent revoked after it was cached is not used', async () => {
    sim = new Simulation({ delivery: { stallTimeoutMs: 5_000 } });
    const [a, b, c, e, f, d] = sim.addAgents(6);
    sim.connect(a, b);
    sim.connect(b, c);
    sim.connect(c, d);
    sim.connect(a, e);
    sim.connect(e, f);
    sim.connect(f, d);
    await sim.start();
    const rec = recordEvents(a.engine);
    const first = newMessageId();
    await a.engine.send({ id: first, to: d.entity, source: { kind: 'bytes', data: Buffer.from('one') } });
    await rec.waitFor((x) => x.kind === 'delivered' && x.id === first);
    expect(a.engine.discovery.cache.get(d.entity)).toHaveLength(2);
    // Revoke the middle hop of the path the first message took.
    const used = rec.events.find((x) => x.kind === 'progress' && x.id === first && x.hop === 2);
    const middle = used?.kind === 'progress' ? used.agent : undefined;
    expect([c.keys.id, f.keys.id]).toContain(middle);
    sim.world.revoked.add(middle!);

    const second = newMessageId();
    await a.engine.send({ id: second, to: d.entity, source: { kind: 'bytes', data: Buffer.from('two') } });
    await rec.waitFor((x) => x.kind === 'delivered' && x.id === second);
    // Straight onto the other path: no stall, no refusal at the revoked agent's neighbour.
    expect(rec.events.some((x) => x.kind === 'stalled' && x.id === second)).toBe(false);
    const hops = rec.events.filter((x) => x.kind === 'progress' && x.id === second);
    expect(hops.map((x) => x.kind === 'progress' && x.agent)).not.toContain(middle);
    expect(a.engine.metrics.get('paths_dropped_revoked')).toBe(1);
    expect(a.engine.discovery.cache.get(d.entity).some((p) => p.agents.includes(middle!))).toBe(false);
  });

  test('"held" is progress: the sender waits instead of re-sending a copy at every stall timeout', async () => {
    const stallTimeoutMs = 100;
    jest.useFakeTimers(ENGINE_FAKE_TIMERS);
    try {
      sim = new Simulation({ delivery: { stallTimeoutMs }, quiesce: true });
      const [a, b, c, d] = sim.addAgents(4);
      sim.connect(a, b);
      sim.connect(b, c);
      sim.connect(c, d);
      await sim.start();
      sim.network.setOnline(d.keys.id, false);
      const rec = recordEvents(a.engine);
      const id = newMessageId();
      await a.engine.send({ id, to: d.entity, source: { kind: 'bytes', data: Buffer.from('wait for me') } });
      await rec.waitFor((e) => e.kind === 'held');
      await sim.network.idle();
      // eight stall timeouts on the sender's clock, well within the wait after "held"
      expect(8 * stallTimeoutMs).toBeLessThan(waitAfterHeld(stallTimeoutMs));
      await jest.advanceTimersByTimeAsync(8 * stallTimeoutMs);
      expect(rec.events.some((e) => e.kind === 'stalled')).toBe(false);
      expect(a.engine.metrics.get('attempts')).toBe(1);
      expect(c.engine.metrics.get('held')).toBe(1);
      // and past the longer wait the sender does act: the check above could fail
      await jest.advanceTimersByTimeAsync(waitAfterHeld(stallTimeoutMs));
      expect(rec.events.some((e) => e.kind === 'stalled')).toBe(true);
      jest.useRealTimers();
      sim.network.setOnline(d.keys.id, true);
      await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);
      await sim.network.idle();
      expect(d.inbox).toHaveLength(1);
      expect(c.engine.heldBytes()).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });

  test('after the longer wait, a holding hop that stays silent is given up for another path', async () => {
    const stallTimeoutMs = 50;
    sim = new Simulation({ delivery: { stallTimeoutMs } });
    const [a, b, c, d] = sim.addAgents(4);
    sim.connect(a, b);
    sim.connect(b, c);
    sim.connect(c, d);
    await sim.start();
    sim.network.setOnline(d.keys.id, false);
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    await a.engine.send({ id, to: d.entity, source: { kind: 'bytes', data: Buffer.from('x') } });
    await rec.waitFor((e) => e.kind === 'held');
    await rec.waitFor((e) => e.kind === 'stalled', waitAfterHeld(stallTimeoutMs) * 4);
  });
});

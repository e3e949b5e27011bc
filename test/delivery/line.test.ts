import { afterEach, describe, expect, test } from '@jest/globals';
import { Simulation } from '../../agent/sim/sim.ts';
import { newMessageId, recordEvents } from './helpers.ts';

describe('line A–B–C–D', () => {
  let sim: Simulation;
  afterEach(async () => sim?.stop());

  test('A discovers a path to D through B and C, delivers, and sees every hop', async () => {
    sim = new Simulation();
    const [a, b, c, d] = sim.addAgents(4);
    sim.connect(a, b);
    sim.connect(b, c);
    sim.connect(c, d);
    await sim.start();
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    const payload = Buffer.from('Subject: hi\r\n\r\nhello D\r\n');
    await a.engine.send({ id, to: d.entity, source: { kind: 'bytes', data: payload } });
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);

    expect(d.inbox).toHaveLength(1);
    expect(d.inbox[0].data?.equals(payload)).toBe(true);
    expect(d.inbox[0].sender).toBe(a.entity);
    const progress = rec.events.filter((e) => e.kind === 'progress');
    expect(progress.map((e) => (e.kind === 'progress' ? [e.hop, e.agent] : []))).toEqual([
      [1, b.keys.id],
      [2, c.keys.id],
      [3, d.keys.id],
    ]);
    // The path was discovered, not configured: A learned it through discovery.
    expect(a.engine.metrics.get('discovery_path_found')).toBeGreaterThan(0);
    expect(b.engine.metrics.get('forwarded')).toBe(1);
    expect(c.engine.metrics.get('forwarded')).toBe(1);
    for (const x of [a, b, c, d]) expect(x.engine.metrics.rejected()).toBe(0);
    // The recipient learned nothing but its predecessor; C still relays the "delivered" report back.
    expect(a.store.getOutbox(id)?.state).toBe('delivered');
  });
});

import { afterEach, describe, expect, jest, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Simulation, type SimAgent } from '../../agent/sim/sim.ts';
import { ENGINE_FAKE_TIMERS, newMessageId, recordEvents } from './helpers.ts';

describe('alternate paths, exactly once, offline recipient', () => {
  let sim: Simulation | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    sim = undefined;
    dir = undefined;
  });

  test('the used path loses its middle hop mid-transfer; the message arrives once via the other path', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kith-alt-'));
    sim = new Simulation({ delivery: { stallTimeoutMs: 2_000, spoolDir: dir, window: 2 } });
    const [a, b1, c1, b2, c2, d] = sim.addAgents(6);
    sim.connect(a, b1);
    sim.connect(b1, c1);
    sim.connect(c1, d);
    sim.connect(a, b2);
    sim.connect(b2, c2);
    sim.connect(c2, d);
    await sim.start();
    const file = join(dir, 'payload.bin');
    const payload = randomBytes(3 * 1024 * 1024);
    await writeFile(file, payload);
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    let killed: SimAgent | undefined;
    a.engine.onEvent((e) => {
      if (e.kind === 'chunks' && e.acked >= 3 && !killed) {
        const middle = rec.events.find((x) => x.kind === 'progress' && x.hop === 2);
        killed = [c1, c2].find((x) => middle?.kind === 'progress' && x.keys.id === middle.agent);
        if (killed) sim?.network.setOnline(killed.keys.id, false);
      }
    });
    await a.engine.send({ id, to: d.entity, source: { kind: 'file', path: file } });
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);

    expect(killed).toBeDefined();
    expect(rec.events.some((e) => e.kind === 'stalled' && e.action === 'alternate path')).toBe(true);
    expect(d.inbox).toHaveLength(1);
    expect(d.inbox[0].sha256).toBe(createHash('sha256').update(payload).digest('hex'));
    const survivor = killed === c1 ? c2 : c1;
    expect(survivor.engine.metrics.get('forwarded')).toBeGreaterThan(0);
    // The transfer resumed: fewer than all 12 chunks went through the second path's middle hop.
    expect(survivor.engine.metrics.get('forwarded')).toBeLessThan(12 + 1);
  });

  test('an offline recipient gets the message when it comes back, once', async () => {
    jest.useFakeTimers(ENGINE_FAKE_TIMERS);
    try {
      sim = new Simulation({ delivery: { stallTimeoutMs: 200 }, quiesce: true });
      const [a, b, c, d] = sim.addAgents(4);
      sim.connect(a, b);
      sim.connect(b, c);
      sim.connect(c, d);
      await sim.start();
      sim.network.setOnline(d.keys.id, false);
      const rec = recordEvents(a.engine);
      const id = newMessageId();
      await a.engine.send({
        id,
        to: d.entity,
        source: { kind: 'bytes', data: Buffer.from('are you there?') },
      });
      const held = await rec.waitFor((e) => e.kind === 'held');
      expect(held.kind === 'held' && held.agent).toBe(c.keys.id);
      await sim.network.idle();
      // Several stall timeouts on the engines' clock: "held" makes the sender wait.
      await jest.advanceTimersByTimeAsync(5 * 200);
      expect(d.inbox).toHaveLength(0);
      sim.network.setOnline(d.keys.id, true);
      jest.useRealTimers();
      await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);
      await sim.network.idle();
      expect(d.inbox).toHaveLength(1);
      expect(d.inbox[0].data?.toString()).toBe('are you there?');
      expect(c.engine.heldBytes()).toBe(0);
      // One attempt: no copy was re-sent while C held the message.
      expect(a.engine.metrics.get('attempts')).toBe(1);
      expect(d.engine.metrics.get('duplicate_message')).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });
});

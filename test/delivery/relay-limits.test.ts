import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { encodeOnion, hopDigest } from '../../agent/delivery/frames.ts';
import { CLOCK_SKEW_MS } from '../../agent/delivery/relay.ts';
import type { MemoryDeliveryStore } from '../../agent/delivery/store.ts';
import { signWith } from '../../agent/onion/keys.ts';
import { buildOnion } from '../../agent/onion/layers.ts';
import { encodeUnit } from '../../agent/payload/unit.ts';
import { Simulation, type SimAgent } from '../../agent/sim/sim.ts';
import { HANG_MS } from '../helpers/hang.ts';
import { until } from '../helpers/until.ts';

const HOP_MEMORY_MS = 60_000;
const MAX_HOLD_MS = 120_000;

/** A two-hop packet M → B → C, valid until `expiresAt`, with `size` bytes of sealed manifest. */
function packet(m: SimAgent, b: SimAgent, c: SimAgent, expiresAt: number, size = 200): Buffer {
  const { header, body } = buildOnion(
    [
      {
        onionPublic: b.keys.onionPublic,
        instruction: { kind: 'forward', next: c.keys.signPublic, report: false, expiresAt },
      },
      { onionPublic: c.keys.onionPublic, instruction: { kind: 'deliver', report: false, expiresAt } },
    ],
    encodeUnit({ kind: 'manifest', id: randomBytes(16), sealed: randomBytes(size) }),
  );
  return encodeOnion(header, body, signWith(m.keys, hopDigest(b.keys.signPublic, header, body)));
}

describe('what a relay keeps for others is bounded in time and bytes', () => {
  let sim: Simulation | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });

  async function line(delivery: Record<string, number> = {}) {
    sim = new Simulation({
      delivery: { hopMemoryMs: HOP_MEMORY_MS, maxHoldMs: MAX_HOLD_MS, ...delivery },
    });
    const [m, b, c] = sim.addAgents(3);
    sim.connect(m, b);
    sim.connect(b, c);
    await sim.start();
    return { m, b, c, store: b.store as MemoryDeliveryStore };
  }

  test('a packet valid for centuries is refused (rejected_expiry_too_far): nothing held, nothing remembered', async () => {
    const { m, b, c, store } = await line();
    sim!.network.setOnline(c.keys.id, false);
    await m.transport.send(b.keys.id, packet(m, b, c, 8_000_000_000_000_000, 200_000));
    await sim!.network.idle();
    expect(b.engine.metrics.get('rejected_expiry_too_far')).toBe(1);
    expect(b.engine.heldBytes()).toBe(0);
    expect(store.held.size).toBe(0);
    expect(store.hopsIn.size).toBe(0);
    // Just inside the limit (with the clock-skew allowance): held, and remembered no longer than that.
    const limit = Date.now() + MAX_HOLD_MS + CLOCK_SKEW_MS - 1_000;
    await m.transport.send(b.keys.id, packet(m, b, c, limit));
    await sim!.network.idle();
    expect(b.engine.metrics.get('held')).toBe(1);
    expect([...store.hopsIn.values()].every((h) => h.expiresAt <= limit)).toBe(true);
  });

  test('hop memory lasts hopMemoryMs for a short-lived packet and is pruned after it', async () => {
    const { m, b, c, store } = await line();
    const before = Date.now();
    await m.transport.send(b.keys.id, packet(m, b, c, Date.now() + 1_000));
    await sim!.network.idle();
    expect(b.engine.metrics.get('forwarded')).toBe(1);
    const [hop] = [...store.hopsIn.values()];
    expect(hop.expiresAt).toBeGreaterThanOrEqual(before + HOP_MEMORY_MS);
    expect(hop.expiresAt).toBeLessThanOrEqual(Date.now() + HOP_MEMORY_MS);
    expect(store.pruneHops(hop.expiresAt - 1)).toBe(0);
    expect(store.pruneHops(hop.expiresAt + 1)).toBe(1);
    expect(store.hopsIn.size).toBe(0);
    expect(store.hopsOut.size).toBe(0);
  });

  test('an expired packet is refused (rejected_expired)', async () => {
    const { m, b, c } = await line();
    await m.transport.send(b.keys.id, packet(m, b, c, Date.now() - 1));
    await sim!.network.idle();
    expect(b.engine.metrics.get('rejected_expired')).toBe(1);
    expect(b.engine.metrics.get('forwarded')).toBe(0);
    expect(c.engine.metrics.get('rejected_expired')).toBe(0);
  });

  test('beyond maxHeldBytes a packet is dropped (rejected_hold_full)', async () => {
    const { m, b, c } = await line({ maxHeldBytes: 400_000 });
    sim!.network.setOnline(c.keys.id, false);
    await m.transport.send(b.keys.id, packet(m, b, c, Date.now() + 60_000, 150_000));
    await sim!.network.idle();
    expect(b.engine.metrics.get('held')).toBe(1);
    const held = b.engine.heldBytes();
    expect(held).toBeGreaterThan(262_144); // the body class, not the payload size
    await m.transport.send(b.keys.id, packet(m, b, c, Date.now() + 60_000, 150_000));
    await sim!.network.idle();
    expect(b.engine.metrics.get('rejected_hold_full')).toBe(1);
    expect(b.engine.heldBytes()).toBe(held);
  });

  test('a held packet that expires before its next hop is back is dropped, not handed on (held_expired)', async () => {
    const { m, b, c, store } = await line();
    sim!.network.setOnline(c.keys.id, false);
    const expiresAt = Date.now() + 150;
    await m.transport.send(b.keys.id, packet(m, b, c, expiresAt));
    await m.transport.send(b.keys.id, packet(m, b, c, Date.now() + 60_000));
    await sim!.network.idle();
    expect(b.engine.metrics.get('held')).toBe(2);
    // The first packet's expiry is a time on the wall clock: wait for that time, not a sleep.
    await until(() => (Date.now() > expiresAt ? true : undefined), 'the first packet to expire', HANG_MS, 20);
    sim!.network.setOnline(c.keys.id, true);
    await sim!.network.idle();
    // Handing held packets on after the link came back is asynchronous: wait for its outcome.
    await until(
      () =>
        (b.engine.metrics.get('held_expired') ?? 0) + (b.engine.metrics.get('forwarded') ?? 0) >= 2
          ? true
          : undefined,
      'both held packets handed on or dropped',
    );
    expect(b.engine.metrics.get('held_expired')).toBe(1);
    expect(b.engine.metrics.get('forwarded')).toBe(1);
    expect(store.held.size).toBe(0);
    expect(b.engine.heldBytes()).toBe(0);
  });
});

import { describe, expect, it } from '@jest/globals';
import { signChange, type SignedChange } from '../../agent/sync/change.ts';
import { encodeSync } from '../../agent/sync/frames.ts';
import type { Op } from '../../agent/sync/model.ts';
import { devices } from './linked.ts';

// Bad input reaching a device through the sync engine, the way it arrives from a linked
// sibling: each refused with its reason (what `sync_refused` records), and nothing else lost —
// the rest of the same batch applies, and a change refused only for now applies later.

const H = 'd'.repeat(64);
const add = (e: string): Op => ({ t: 'add', e, h: H, f: 'INBOX', d: 1, s: 1, fl: [] });

describe('sync over links: bad input refused with a reason, nothing lost', () => {
  it("a revoked sibling's new change, relayed by a sibling that has not heard of the revocation yet, is refused; what it wrote before stays", async () => {
    const { net, all } = devices(3);
    const [laptop, home, phone] = all;
    net.link(laptop.id, home.id);
    net.link(home.id, phone.id);
    laptop.engine.local([add('before')]);
    await net.idle();
    expect(phone.eids()).toEqual(['before']);

    // The laptop is lost and revoked; the phone knows, home does not yet.
    phone.revoked.add(laptop.id);
    laptop.engine.local([add('after')]);
    home.engine.local([add('from-home')]);
    await net.idle();
    expect(home.eids()).toEqual(['after', 'before', 'from-home']);
    expect(phone.eids()).toEqual(['before', 'from-home']);
    expect(phone.refusals).toContainEqual({ author: laptop.id, seq: 2, reason: 'revoked', via: home.id });
    expect(phone.engine.counters.refused.revoked).toBe(1);
  });

  it("a forged change in a sibling's batch is refused as bad-signature, the rest of the batch applies, the genuine one later too", async () => {
    const { net, all } = devices(3);
    const [laptop, home, phone] = all;
    net.link(home.id, phone.id);
    const genuine = laptop.replica.local([add('genuine')]).change;
    const forged: SignedChange = { b: genuine.b.replace('"genuine"', '"planted"'), g: genuine.g };
    const fromHome = home.replica.local([add('from-home')]).change;
    await home.transport.send(phone.id, encodeSync({ kind: 'changes', changes: [fromHome, forged] }));
    await net.idle();
    expect(phone.eids()).toEqual(['from-home']);
    expect(phone.refusals).toContainEqual({
      author: laptop.id,
      seq: 1,
      reason: 'bad-signature',
      via: home.id,
    });

    net.link(laptop.id, phone.id);
    await net.idle();
    expect(phone.eids()).toEqual(['from-home', 'genuine']);
  });

  it('a replayed change is ignored; another change under a number already held is refused, the held one kept', async () => {
    const { net, all } = devices(2);
    const [laptop, phone] = all;
    net.link(laptop.id, phone.id);
    const { change, body } = laptop.replica.local([add('m1')]);
    laptop.engine.local([add('m2')]);
    await net.idle();
    expect(phone.eids()).toEqual(['m1', 'm2']);

    await laptop.transport.send(phone.id, encodeSync({ kind: 'changes', changes: [change, change] }));
    const rewritten = signChange({ ...body, ops: [{ t: 'expunge', e: 'm1' }] }, laptop.key);
    await laptop.transport.send(phone.id, encodeSync({ kind: 'changes', changes: [rewritten] }));
    await net.idle();
    expect(phone.engine.counters.duplicate).toBe(2);
    expect(phone.refusals).toContainEqual({
      author: laptop.id,
      seq: 1,
      reason: 'conflicting-replay',
      via: laptop.id,
    });
    expect(phone.eids()).toEqual(['m1', 'm2']);
  });

  it('a change stamped far in the future is refused for now and applies once the clock is there (offered again)', async () => {
    const { net, all } = devices(2);
    const [laptop, phone] = all;
    laptop.clock.now = phone.clock.now + 3_600_000; // a device whose clock is an hour fast
    net.link(laptop.id, phone.id);
    laptop.engine.local([add('from-the-future')]);
    await net.idle();
    expect(phone.eids()).toEqual([]);
    expect(phone.refusals).toContainEqual({
      author: laptop.id,
      seq: 1,
      reason: 'future-clock',
      via: laptop.id,
    });
    // Nothing lost: the author keeps it and offers it again (anti-entropy: the 30 s timer).
    phone.clock.now += 3_600_000;
    phone.engine.antiEntropy();
    await net.idle();
    expect(phone.eids()).toEqual(['from-the-future']);
  });
});

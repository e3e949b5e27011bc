import { describe, expect, it } from '@jest/globals';
import { generateAgentKeys } from '../../agent/onion/keys.ts';
import { revocationOf, snapshot, type Op } from '../../agent/sync/model.ts';
import { MemoryReplicaStore, Replica } from '../../agent/sync/replica.ts';
import { devices, type Device } from './linked.ts';
import { ENTITY, replicas } from './replicas.ts';

// A sibling revoked on one device (`kith agent revoke`, a lost laptop): the revocation travels as
// a signed op in that device's change log, and every device then refuses the revoked agent's
// later changes with the reason `revoked`, keeps the ones it made before, and all end equal.

const H = 'e'.repeat(64);
const add = (e: string): Op => ({ t: 'add', e, h: H, f: 'INBOX', d: 1, s: 1, fl: [] });
/** The signed statement as the trust store hands it over (its contents are the trust store's to check). */
const STATEMENT = JSON.stringify({ canonical: '{"type":"kith-agent-revocation"}\n', signature: 'sig' });

/** `by` revokes `agent` as its trust bridge does: cut off here, and a revocation op recorded. */
function revoke(by: Device, agent: Device): Extract<Op, { t: 'revocation' }> {
  by.revoked.add(agent.id);
  const op = by.replica.revocationOp(agent.id, STATEMENT);
  if (op?.t !== 'revocation') throw new Error('no revocation op');
  by.engine.local([op]);
  return op;
}

describe('sync: a revoked sibling, through a revocation op', () => {
  it("home revokes the laptop; the phone, told only by home's op, refuses the laptop's next change and keeps the one before", async () => {
    const { net, all } = devices(3);
    const [laptop, home, phone] = all;
    net.link(laptop.id, home.id);
    net.link(laptop.id, phone.id);
    net.link(home.id, phone.id);
    laptop.engine.local([add('before')]);
    await net.idle();
    expect(phone.eids()).toEqual(['before']);

    net.unlink(laptop.id, home.id); // home's links to a revoked agent close
    expect(revoke(home, laptop).k).toBe(1);
    await net.idle();
    expect(revocationOf(phone.store, laptop.id)?.upTo).toBe(1);

    // Still linked to the phone (whose trust store has not heard), the laptop writes on.
    laptop.engine.local([add('after')]);
    await net.idle();
    expect(phone.eids()).toEqual(['before']);
    expect(phone.refusals).toContainEqual({ author: laptop.id, seq: 2, reason: 'revoked', via: laptop.id });
    expect(phone.engine.counters.refused.revoked).toBe(1);
    expect(home.eids()).toEqual(phone.eids());
  });

  it('a device that held more of the revoked log raises the bound: both end with the same changes, later ones refused', async () => {
    const { net, all } = devices(3);
    const [laptop, home, phone] = all;
    net.link(laptop.id, home.id);
    net.link(laptop.id, phone.id);
    laptop.engine.local([add('m1')]);
    await net.idle();
    net.unlink(laptop.id, home.id);
    laptop.engine.local([add('m2')]); // made before the revocation, only the phone has it
    await net.idle();
    net.unlink(laptop.id, phone.id);

    expect(revoke(home, laptop).k).toBe(1);
    net.link(home.id, phone.id);
    await net.idle();
    // The phone raised the bound to what it held, and home took m2 from it.
    expect(revocationOf(phone.store, laptop.id)?.upTo).toBe(2);
    expect(revocationOf(home.store, laptop.id)?.upTo).toBe(2);
    expect(home.eids()).toEqual(['m1', 'm2']);
    expect(phone.eids()).toEqual(['m1', 'm2']);
    expect(home.replica.versionVector()).toEqual(phone.replica.versionVector());

    // The laptop comes back on the phone's link: its new change is refused, and so is its own
    // attempt to raise the bound (a revoked device does not vouch for itself; that is its change too).
    net.link(laptop.id, phone.id);
    laptop.engine.local([add('m3')]);
    await net.idle();
    expect(phone.eids()).toEqual(['m1', 'm2']);
    expect(phone.refusals).toContainEqual({ author: laptop.id, seq: 3, reason: 'revoked', via: laptop.id });
    expect(revocationOf(laptop.store, laptop.id)?.upTo).toBe(2);
  });

  it('a device added after the revocation, holding no certificate of the revoked agent, takes its changes up to the bound and no further', () => {
    const [laptop, home] = replicas(2);
    laptop.do([add('m1')]);
    laptop.do([add('m2')]);
    for (const c of laptop.replica.changesFor({}, 10)) home.replica.receive(c);
    const op = home.replica.revocationOp(laptop.id, STATEMENT);
    expect(op).toMatchObject({ t: 'revocation', g: laptop.id, k: 2 });
    home.do([op!]);
    laptop.do([add('m3')]);
    // The new device's bundle named home only (bundles carry unrevoked siblings).
    const key = generateAgentKeys();
    const store = new MemoryReplicaStore();
    const fresh = new Replica({
      store,
      self: key.id,
      entity: ENTITY,
      key: key.signPrivate,
      authorStatus: (a) => (a === home.id ? 'sibling' : 'unknown'),
    });
    for (const c of home.replica.changesFor({ [laptop.id]: 2 }, 10)) fresh.receive(c); // home's own log first
    for (const c of home.replica.changesFor({ [home.id]: 1 }, 10)) fresh.receive(c);
    expect(fresh.versionVector()).toEqual(home.replica.versionVector());
    const [m3] = laptop.replica.changesFor({ [laptop.id]: 2 }, 10);
    expect(fresh.receive(m3)).toMatchObject({ result: 'refused', reason: 'revoked', seq: 3 });
    expect(snapshot(store).entries.map((e) => e.eid)).toEqual(['m1', 'm2']);
  });
});

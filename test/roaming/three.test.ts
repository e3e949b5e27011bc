import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ImapFlow } from 'imapflow';
import { peerIdFromString } from '@libp2p/peer-id';
import { revocationOf } from '../../agent/sync/model.ts';
import { revokeAgentCertificate } from '../../agent/trust/revocation.ts';
import type { Fingerprint } from '../../common/ids.ts';
import { until } from '../helpers/until.ts';
import { startEntity, type Entity } from './entity.ts';
import { act, rng, settledState } from './imap-actions.ts';

const NAMES = ['home', 'laptop', 'phone'];
/** Friends' fingerprints the devices trust and revoke at random (contact changes; no key needed). */
const FRIENDS = Array.from({ length: 4 }, (_, i) => String(i + 1).repeat(40));

describe('roaming: three devices, each offline in turn, random changes over IMAP', () => {
  let alice: Entity;
  beforeAll(async () => {
    alice = await startEntity(NAMES);
    await alice.link('laptop', 'home');
    await alice.link('phone', 'home');
    await alice.link('phone', 'laptop');
  });
  afterAll(async () => alice?.close(), 60_000);

  /** One IMAP client per running device, opened again after the device restarted. */
  const clients = new Map<string, { node: unknown; client: ImapFlow }>();
  const imap = async (name: string): Promise<ImapFlow> => {
    const node = alice.node(name);
    const held = clients.get(name);
    // (a session whose selected mailbox a sibling deleted is closed by the server: open another)
    if (held?.node === node && held.client.usable) return held.client;
    const client = await alice.imap(name);
    clients.set(name, { node, client });
    return client;
  };

  /** What each device's trust store says of the friends (the contact changes' effect). */
  const trustOf = (name: string): string =>
    FRIENDS.map((f) => {
      const e = alice.node(name).trust.entity(f as Fingerprint);
      return `${f.slice(0, 4)} ${e === undefined ? '-' : e.revokedAt !== undefined ? 'revoked' : e.trusted ? 'trusted' : '?'}`;
    }).join(', ');

  const converged = async (names: string[], what: string) => {
    let last: string[] = [];
    await until(async () => {
      const looks: string[] = [];
      for (const n of names) {
        const look = await settledState(await imap(n));
        if (look === undefined) return undefined;
        looks.push(`${look}\ntrust: ${trustOf(n)}`);
      }
      last = looks;
      return last.every((s) => s === last[0]) ? true : undefined;
    }, what).catch((err: Error) => {
      throw new Error(`${err.message}\n${names.map((n, i) => `--- ${n}\n${last[i]}`).join('\n')}`);
    });
    return last[0];
  };

  it('converge to the same mailboxes, messages, flags and trust, with no message lost or duplicated', async () => {
    const home = await imap('home');
    await home.mailboxCreate('Work');
    await home.mailboxCreate('Lists');
    for (let i = 0; i < 30; i++) {
      await home.append('INBOX', Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n`), []);
    }
    await converged(NAMES, 'the seed on every device');
    const seed = Number(process.env.KITH_ROAMING_SEED) || 13;
    process.stdout.write(`roaming three devices: seed ${seed} (repeat with KITH_ROAMING_SEED=${seed})\n`);
    const random = rng(seed);
    const expunged = new Set<string>();
    let contactChanges = 0;
    /** A random change on one device: mostly over IMAP, one in eight a friend trusted or revoked. */
    const change = async (name: string) => {
      if (random() < 0.125) {
        const friend = FRIENDS[Math.floor(random() * FRIENDS.length)];
        const trust = alice.node(name).trust;
        const e = trust.entity(friend as Fingerprint);
        if (e?.trusted && e.revokedAt === undefined) trust.revoke(friend);
        else trust.trustFingerprint(friend);
        contactChanges++;
        return;
      }
      for (const s of await act(await imap(name), random, { folders: true })) expunged.add(s);
    };
    for (const away of NAMES) {
      await alice.stop(away);
      const online = NAMES.filter((n) => n !== away);
      for (let i = 0; i < 20; i++) await change(online[i % 2]);
      await alice.start(away);
      for (const other of online) await alice.link(away, other);
      await converged(NAMES, `convergence after ${away} came back`);
    }
    // Now all three apart at once: each changes things on its own, then they link again.
    for (const [x, y] of [
      ['laptop', 'home'],
      ['phone', 'home'],
      ['phone', 'laptop'],
    ]) {
      const [nx, ny] = [alice.node(x), alice.node(y)];
      await nx.links.libp2p.hangUp(peerIdFromString(ny.identity.agentId));
      await until(
        () =>
          !nx.links.isLinked(ny.identity.agentId) && !ny.links.isLinked(nx.identity.agentId)
            ? true
            : undefined,
        `${x} and ${y} apart`,
      );
    }
    for (let i = 0; i < 30; i++) await change(NAMES[i % 3]);
    await alice.link('laptop', 'home');
    await alice.link('phone', 'home');
    await alice.link('phone', 'laptop');
    const final = await converged(NAMES, 'convergence after a partition');
    const subjects = [...final.matchAll(/\bm\d+\b/g)].map((m) => m[0]).sort();
    // Every message not expunged by someone is there, exactly once.
    const expected = Array.from({ length: 30 }, (_, i) => `m${i}`).filter((m) => !expunged.has(m));
    expect(subjects).toEqual(expected.sort());
    expect(expunged.size).toBeGreaterThan(0);
    expect(contactChanges).toBeGreaterThan(0);
  });

  it("home revokes the phone: the laptop applies home's revocation op and refuses the phone's next change as revoked", async () => {
    const [home, laptop, phone] = NAMES.map((n) => alice.node(n));
    const phoneId = phone.identity.agentId;
    const vv = (n: typeof home) => JSON.stringify(Object.entries(n.roaming.replica.versionVector()).sort());
    await until(() => (vv(home) === vv(laptop) && vv(home) === vv(phone) ? true : undefined), 'equal logs');
    // As `kith agent revoke` does (agent/control/methods.ts): signed by the entity key, stored.
    await home.trust.addAgentRevocation(await revokeAgentCertificate(home.identity.entityKey!, phoneId));
    const held = home.roaming.replica.versionVector()[phoneId];
    expect(held).toBeGreaterThan(0);
    await until(
      () =>
        laptop.trust.isRevokedAgent(phoneId) && revocationOf(laptop.roaming.store, phoneId)
          ? true
          : undefined,
      'the revocation on the laptop',
    );
    expect(revocationOf(laptop.roaming.store, phoneId)?.upTo).toBe(held);
    const ops = laptop.roaming.store
      .changesFrom(home.identity.agentId, 1, Number.MAX_SAFE_INTEGER)
      .flatMap((c) => (JSON.parse(c.b) as { ops: { t: string; g?: string }[] }).ops);
    expect(ops.filter((op) => op.t === 'revocation').map((op) => op.g)).toEqual([phoneId]);

    // The phone, cut off, goes on: its next change reaches nobody, and offered to the laptop it is refused.
    await (await imap('phone')).append('INBOX', Buffer.from('Subject: after\r\n\r\nrevoked\r\n'), []);
    await phone.roaming.bridge.idle();
    const next = phone.roaming.replica.versionVector()[phoneId];
    expect(next).toBeGreaterThan(held);
    const [change] = phone.roaming.store.changesFrom(phoneId, next, 1);
    expect(laptop.roaming.replica.receive(change)).toMatchObject({ result: 'refused', reason: 'revoked' });
    expect(laptop.roaming.replica.versionVector()[phoneId]).toBe(held);
  });
});

import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { signAddressRecord, verifyAddressRecord } from '../../agent/reachability/index.ts';
import { asAgentId } from '../../common/ids.ts';
import { freePort } from '../helpers/kith-nodes.ts';
import { eventually, removeTempDirs, startAgent, type TestAgent } from '../links/helpers.ts';

const running: TestAgent[] = [];
async function agent(name: string, directory = false): Promise<TestAgent> {
  const a = await startAgent(name, { directory });
  running.push(a);
  return a;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
});
afterAll(removeTempDirs);

async function invite(inviter: TestAgent, invitee: TestAgent): Promise<void> {
  await invitee.links.acceptInvitation(inviter.links.createInvitation({ ttlMs: 60_000 }));
  await eventually(() => inviter.links.isLinked(invitee.identity.agentId), 'linked');
  await eventually(
    () =>
      inviter.reach.addressesOf(invitee.identity.agentId).length > 0 &&
      invitee.reach.addressesOf(inviter.identity.agentId).length > 0,
    'both sides cache the other address',
  );
}

const port = (address: string): string => address.split('/tcp/')[1].split('/')[0];

describe('reachability: signed address announcements', () => {
  it("a neighbour learns an agent's new address and reaches it there", async () => {
    const alice = await agent('alice');
    const bob = await agent('bob');
    await invite(alice, bob);
    const before = bob.address();
    await eventually(
      () => alice.reach.addressesOf(bob.identity.agentId).some((a) => before.startsWith(a)),
      "alice caches bob's address",
    );

    // Bob moves (new port) and comes back through the address he cached for alice.
    await bob.restart();
    const after = bob.address();
    expect(port(after)).not.toBe(port(before));
    await bob.links.connect(alice.identity.agentId);
    await eventually(
      () => alice.reach.addressesOf(bob.identity.agentId).some((a) => after.startsWith(a)),
      "alice learns bob's new address",
    );
    expect(alice.reach.addressesOf(bob.identity.agentId).some((a) => before.startsWith(a))).toBe(false);

    // Alice drops the link and later reaches bob on her own at the new address.
    await alice.links.libp2p.hangUp(bob.links.libp2p.peerId);
    await eventually(() => !alice.links.isLinked(bob.identity.agentId), 'link closed');
    await alice.links.connect(bob.identity.agentId);
    expect(alice.links.isLinked(bob.identity.agentId)).toBe(true);
    expect(alice.links.contacts()[0].agents[0].addresses.some((a) => after.startsWith(a))).toBe(true);
  });

  it('an agent that lost every address of a contact gets the last known one from a neighbour', async () => {
    const alice = await agent('alice');
    const bob = await agent('bob');
    const carol = await agent('carol');
    await invite(alice, bob);
    await invite(carol, bob);
    await invite(carol, alice);
    await eventually(() => carol.reach.addressesOf(bob.identity.agentId).length > 0, 'carol knows bob');
    // Bob moves while carol is away: only alice hears his new address.
    await carol.links.libp2p.hangUp(bob.links.libp2p.peerId);
    await bob.restart();
    await bob.links.connect(alice.identity.agentId);
    const moved = bob.address();
    await eventually(
      () => alice.reach.addressesOf(bob.identity.agentId).some((a) => moved.startsWith(a)),
      'alice',
    );
    // Carol's old address for bob is now wrong: the dial fails and the address is set aside.
    await expect(carol.links.connect(bob.identity.agentId)).rejects.toThrow();
    expect(carol.reach.addressesOf(bob.identity.agentId)).toEqual([]);
    // Asking the neighbours (alice) finds bob again.
    const reached = await carol.reach.reach(bob.identity.fingerprint);
    expect(reached).toBe(bob.identity.agentId);
    expect(carol.links.isLinked(bob.identity.agentId)).toBe(true);
  });

  it('a neighbour that was only offline is dialled again where it was, though a failed dial set it aside', async () => {
    const alice = await agent('alice');
    const port = await freePort();
    const bob = await startAgent('bob', { listen: [`/ip4/127.0.0.1/tcp/${port}`] });
    running.push(bob);
    await invite(alice, bob);
    // Bob goes offline; alice's redial fails and sets his only address aside.
    await bob.reach.stop();
    await bob.links.stop();
    await eventually(() => !alice.links.isLinked(bob.identity.agentId), 'alice to see bob gone');
    await expect(alice.links.connect(bob.identity.agentId)).rejects.toThrow();
    expect(alice.reach.addressesOf(bob.identity.agentId)).toEqual([]);
    // He comes back at the same address (a laptop waking up, a node restarting): alice, who has
    // nothing better, tries the set-aside address and links; it is good again.
    await bob.restart();
    await alice.links.connect(bob.identity.agentId);
    expect(alice.links.isLinked(bob.identity.agentId)).toBe(true);
    expect(alice.reach.addressesOf(bob.identity.agentId).some((a) => a.includes(`/tcp/${port}`))).toBe(true);
  });

  it('refuses unsigned, forged and stale records', async () => {
    const key = await generateKeyPair('Ed25519');
    const agentId = asAgentId(peerIdFromPrivateKey(key).toString());
    const now = Date.now();
    const fields = {
      agent: agentId,
      entity: 'B'.repeat(40) as never,
      addresses: ['/dns4/home.example.org/tcp/4410'],
    };
    const good = await signAddressRecord(key, { ...fields, seq: now });
    await expect(verifyAddressRecord(good, { now, maxAgeMs: 60_000 })).resolves.toMatchObject({
      addresses: ['/dns4/home.example.org/tcp/4410'],
    });
    const forged = { ...good, canonical: good.canonical.replace('home.example.org', 'evil.example.org') };
    await expect(verifyAddressRecord(forged, { now, maxAgeMs: 60_000 })).rejects.toMatchObject({
      code: 'ERR_RECORD_SIGNATURE',
    });
    await expect(
      verifyAddressRecord({ ...good, signature: '' }, { now, maxAgeMs: 60_000 }),
    ).rejects.toMatchObject({
      code: 'ERR_RECORD_UNSIGNED',
    });
    const old = await signAddressRecord(key, { ...fields, seq: now - 120_000 });
    await expect(verifyAddressRecord(old, { now, maxAgeMs: 60_000 })).rejects.toMatchObject({
      code: 'ERR_RECORD_STALE',
    });
  });
});

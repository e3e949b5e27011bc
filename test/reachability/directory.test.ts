// The directory role (p2p.directory): answers "where is X?" with the signed record X registered
// (announced) with it; never hands on unsigned, forged or stale records, nor records of revoked
// entities; never relays.
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { peerIdFromString } from '@libp2p/peer-id';
import { defaultConfig } from '../../config/defaults.ts';
import { loadConfig } from '../../config/load.ts';
import { natExtras } from '../../agent/nat/index.ts';
import { readFrames, readJson, writeJson } from '../../agent/links/frames.ts';
import { ADDRESS_PROTOCOL, createReachability, signAddressRecord } from '../../agent/reachability/index.ts';
import { silentLogger } from '../../common/logger.ts';
import { eventually, p2pConfig, removeTempDirs, startAgent, type TestAgent } from '../links/helpers.ts';

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

async function hangUp(a: TestAgent, b: TestAgent): Promise<void> {
  await a.links.libp2p.hangUp(b.links.libp2p.peerId);
  await eventually(() => !a.links.isLinked(b.identity.agentId), 'link closed');
}

/**
 * Alice and bob know each other; both registered with the directory; then alice's only link is
 * the directory and bob has moved to a new port that only the directory heard about.
 */
async function network(): Promise<{ dir: TestAgent; alice: TestAgent; bob: TestAgent; moved: string }> {
  const dir = await agent('dir', true);
  const alice = await agent('alice');
  const bob = await agent('bob');
  await invite(alice, bob);
  await invite(dir, alice);
  await invite(dir, bob);
  await hangUp(alice, bob);
  await bob.restart();
  await bob.links.connect(dir.identity.agentId);
  const moved = bob.address();
  await eventually(
    () => dir.reach.addressesOf(bob.identity.agentId).some((a) => moved.startsWith(a)),
    'bob registers his new address with the directory',
  );
  return { dir, alice, bob, moved };
}

describe('directory role', () => {
  it("an agent finds another's current address through a directory", async () => {
    const { dir, alice, bob, moved } = await network();
    expect(alice.links.transport.neighbours()).toEqual([dir.identity.agentId]);
    // Alice's cached address is the old one: the dial fails and sets it aside.
    await expect(alice.links.connect(bob.identity.agentId)).rejects.toThrow();
    expect(await alice.reach.lookup(bob.identity.fingerprint)).toEqual([bob.identity.agentId]);
    expect(alice.reach.addressesOf(bob.identity.agentId).some((a) => moved.startsWith(a))).toBe(true);
    expect(await alice.reach.reach(bob.identity.fingerprint)).toBe(bob.identity.agentId);
    expect(alice.links.isLinked(bob.identity.agentId)).toBe(true);
  });

  it('hands out no stale record, even one a working dial vouched for recently', async () => {
    const { dir, alice, bob } = await network();
    expect(await alice.reach.lookup(bob.identity.fingerprint)).toEqual([bob.identity.agentId]);
    // The directory's clock moves past the TTL of bob's record (signed at registration); a
    // working dial (markWorked) keeps the record in the cache but must not make it fresh.
    await dir.reach.stop();
    const ttl = p2pConfig({ directory: true }).addressTtlMs;
    dir.reach = createReachability({
      links: dir.links,
      trust: dir.trust,
      identity: dir.identity,
      db: dir.db,
      config: p2pConfig({ directory: true }),
      log: silentLogger(),
      clock: () => Date.now() + ttl + 60_000,
    });
    await dir.reach.start();
    dir.reach.markWorked(bob.identity.agentId, bob.address());
    expect(dir.reach.addressesOf(bob.identity.agentId).length).toBeGreaterThan(0);
    // Alice's own clock would still accept the record: only the directory's re-check refuses it.
    expect(await alice.reach.lookup(bob.identity.fingerprint)).toEqual([]);
  });

  it('refuses an unsigned registration and never hands on a record whose signature fails', async () => {
    const { dir, alice, bob } = await network();
    // An unsigned announcement from a trusted agent is refused: no "ok", the record unchanged.
    const before = dir.reach.addressesOf(bob.identity.agentId);
    const unsigned = await signAddressRecord(bob.identity.agentKey, {
      agent: bob.identity.agentId,
      entity: bob.identity.fingerprint,
      addresses: ['/ip4/127.0.0.1/tcp/9'],
      seq: Date.now() + 1_000,
    });
    const connection = bob.links.libp2p
      .getConnections(peerIdFromString(dir.identity.agentId))
      .find((c) => c.status === 'open')!;
    const stream = await connection.newStream(ADDRESS_PROTOCOL);
    await writeJson(stream, { t: 'announce', record: { ...unsigned, signature: '' } });
    await expect(readJson(readFrames(stream, 256 * 1024))).rejects.toThrow();
    expect(dir.reach.addressesOf(bob.identity.agentId)).toEqual(before);
    // A record corrupted in the directory's store (its signature no longer verifies) is left out.
    // Nothing of bob's may replace it before the lookup: an announcement of his own (a retry, a
    // newer address), even one already on its way when he stopped, did so on a loaded machine (CI,
    // twice). The store keeps the highest seq, so the corrupted row gets one no announcement beats.
    await bob.stop();
    running.splice(running.indexOf(bob), 1);
    dir.db
      .prepare("UPDATE reach_record SET signature = 'AAAA', seq = ? WHERE agent = ?")
      .run(Number.MAX_SAFE_INTEGER, bob.identity.agentId);
    // The directory itself leaves it out of its answer (alice would refuse it as well).
    const asking = await alice.links.libp2p
      .getConnections(peerIdFromString(dir.identity.agentId))
      .find((c) => c.status === 'open')!
      .newStream(ADDRESS_PROTOCOL);
    await writeJson(asking, { t: 'query', entity: bob.identity.fingerprint });
    expect(await readJson(readFrames(asking, 256 * 1024))).toMatchObject({ t: 'records', items: [] });
    expect(await alice.reach.lookup(bob.identity.fingerprint)).toEqual([]);
  });

  it('does not answer for a revoked entity', async () => {
    const { dir, alice, bob } = await network();
    expect(await alice.reach.lookup(bob.identity.fingerprint)).toEqual([bob.identity.agentId]);
    dir.trust.revoke(bob.identity.fingerprint);
    expect(await alice.reach.lookup(bob.identity.fingerprint)).toEqual([]);
  });

  it('a directory never relays: the two roles are refused together', () => {
    const both = {
      ...defaultConfig().p2p,
      directory: true,
      relay: { ...defaultConfig().p2p.relay, enabled: true },
    };
    expect(() => natExtras(both)).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }));
    expect(() =>
      loadConfig({
        env: {},
        file: '/dev/null',
        overrides: { p2p: { directory: true, relay: { enabled: true } } } as never,
      }),
    ).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }));
    // A directory node runs no relay server: nobody can reserve with it or be relayed through it.
    expect(natExtras({ ...defaultConfig().p2p, directory: true }).services?.relay).toBeUndefined();
  });
});

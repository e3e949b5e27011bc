// When agents announce their addresses, when neighbours forget them, when an address is set aside,
// and DNS names (DynDNS) as addresses: real libp2p over loopback TCP, real SQLite.
import { createServer } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { AgentId } from '../../common/ids.ts';
import type { Config } from '../../config/schema.ts';
import { eventually, removeTempDirs, sleep, startAgent, type TestAgent } from '../links/helpers.ts';

const running: TestAgent[] = [];
async function agent(
  name: string,
  p2p: Partial<Config['p2p']> = {},
  options: Parameters<typeof startAgent>[2] = {},
): Promise<TestAgent> {
  const a = await startAgent(name, p2p, options);
  running.push(a);
  return a;
}
async function stop(a: TestAgent): Promise<void> {
  running.splice(running.indexOf(a), 1);
  await a.stop();
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

/** The seq of the record `holder` keeps for `agent` (undefined: none held). */
function heldSeq(holder: TestAgent, agent: AgentId): number | undefined {
  const row = holder.db.prepare('SELECT seq FROM reach_record WHERE agent = ?').get(agent) as
    { seq: number } | undefined;
  return row?.seq;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('address announcements', () => {
  it('are repeated every p2p.announceIntervalMs, with the addresses unchanged', async () => {
    const alice = await agent('alice', { announceIntervalMs: 300 });
    const bob = await agent('bob');
    await invite(alice, bob);
    const seen = new Set<number>();
    await eventually(
      () => {
        const seq = heldSeq(bob, alice.identity.agentId);
        if (seq !== undefined) seen.add(seq);
        return seen.size >= 3;
      },
      'three records from alice in a row',
      3_000,
    );
    expect(bob.reach.addressesOf(alice.identity.agentId)).toEqual(alice.reach.ownAddresses());
  });

  it('go out when the addresses change, without waiting for the interval', async () => {
    const alice = await agent('alice'); // announceIntervalMs: 10 minutes
    const bob = await agent('bob');
    await invite(alice, bob);
    const before = heldSeq(bob, alice.identity.agentId);
    // Alice starts listening on a second port (a new interface, a new mapping).
    const transportManager = (
      alice.links.libp2p as unknown as {
        components: { transportManager: { listen(addrs: Multiaddr[]): Promise<void> } };
      }
    ).components.transportManager;
    await transportManager.listen([multiaddr('/ip4/127.0.0.1/tcp/0')]);
    await eventually(() => alice.reach.ownAddresses().length === 2, 'alice has two addresses');
    const both = alice.reach.ownAddresses();
    await eventually(
      () => JSON.stringify(bob.reach.addressesOf(alice.identity.agentId)) === JSON.stringify(both),
      'bob learns both addresses',
      5_000,
    );
    expect(heldSeq(bob, alice.identity.agentId)).toBeGreaterThan(before!);
  });
});

describe('the address cache', () => {
  it('forgets a neighbour silent for p2p.addressTtlMs', async () => {
    // Alice's address cache runs on a clock the test moves: real time on a loaded machine let the
    // 800 ms pass before the first check (CI), and "silent for" is what is tested, not how fast.
    let aliceNow = Date.now();
    const alice = await agent('alice', { addressTtlMs: 800 }, { reachClock: () => aliceNow });
    const bob = await agent('bob');
    const carol = await agent('carol'); // default TTL: keeps what it heard
    await invite(alice, bob);
    await invite(carol, bob);
    expect(heldSeq(alice, bob.identity.agentId)).toBeDefined();
    await stop(bob);
    aliceNow += 900;
    await eventually(() => heldSeq(alice, bob.identity.agentId) === undefined, 'alice forgets bob');
    expect(alice.reach.addressesOf(bob.identity.agentId)).toEqual([]);
    expect(heldSeq(carol, bob.identity.agentId)).toBeDefined();
  });

  it('sets aside an address where another key answers', async () => {
    const alice = await agent('alice');
    const bob = await agent('bob');
    await invite(alice, bob);
    const old = bob.address();
    const port = old.split('/tcp/')[1].split('/')[0];
    await stop(bob);
    await eventually(() => !alice.links.isLinked(bob.identity.agentId), 'link closed');
    // Someone else now listens where bob was.
    await agent('mallory', { listen: [`/ip4/127.0.0.1/tcp/${port}`] });
    await expect(alice.links.connect(bob.identity.agentId)).rejects.toThrow();
    expect(alice.reach.addressesOf(bob.identity.agentId)).toEqual([]);
    const invalid = alice.db
      .prepare('SELECT address FROM reach_invalid WHERE agent = ?')
      .all(bob.identity.agentId) as { address: string }[];
    expect(invalid.map((r) => r.address)).toEqual([`/ip4/127.0.0.1/tcp/${port}`]);
  });

  it('dials a DNS name (DynDNS): /dns4/localhost', async () => {
    const port = await freePort();
    const dyndns = `/dns4/localhost/tcp/${port}`;
    const bob = await agent('bob', { listen: [`/ip4/127.0.0.1/tcp/${port}`], announce: [dyndns] });
    const alice = await agent('alice');
    await invite(bob, alice);
    expect(alice.reach.addressesOf(bob.identity.agentId)).toEqual([dyndns]);
    await alice.links.libp2p.hangUp(bob.links.libp2p.peerId);
    await eventually(() => !alice.links.isLinked(bob.identity.agentId), 'link closed');
    await sleep(50);
    await alice.links.connect(bob.identity.agentId);
    expect(alice.links.isLinked(bob.identity.agentId)).toBe(true);
    expect(alice.reach.addressesOf(bob.identity.agentId)).toEqual([dyndns]);
  });
});

// A relay keeps the links of NATed agents holding a reservation with it: neither the idle timeout
// nor the link cap may cut them off (they are reachable only through that link).
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { peerIdFromString } from '@libp2p/peer-id';
import { createLinks } from '../../agent/links/index.ts';
import { createNat, natExtras, type Nat } from '../../agent/nat/index.ts';
import { silentLogger } from '../../common/logger.ts';
import type { Config } from '../../config/schema.ts';
import {
  eventually,
  p2pConfig,
  removeTempDirs,
  sleep,
  startAgent,
  type TestAgent,
} from '../links/helpers.ts';

const running: TestAgent[] = [];
const nats: Nat[] = [];
async function agent(name: string): Promise<TestAgent> {
  const a = await startAgent(name);
  running.push(a);
  return a;
}
afterEach(async () => {
  await Promise.all(nats.splice(0).map((n) => n.stop()));
  await Promise.all(running.splice(0).map((a) => a.stop()));
});
afterAll(removeTempDirs);

/** Restarts an agent's link manager with another p2p config and the NAT layer's transports. */
async function relink(a: TestAgent, p2p: Config['p2p']): Promise<void> {
  await a.links.stop();
  a.links = createLinks({
    identity: a.identity,
    trust: a.trust,
    config: p2p,
    log: silentLogger(),
    extras: natExtras(p2p, { stunServers: [] }),
  });
  await a.links.start();
}

/** A relay (relay server on), a NATed agent reserved with it, and a plain friend of the relay. */
async function network(relayConfig: Partial<Config['p2p']>) {
  const relay = await agent('relay');
  const natted = await agent('natted');
  const friend = await agent('friend');
  await natted.links.acceptInvitation(relay.links.createInvitation({ ttlMs: 60_000 }));
  await friend.links.acceptInvitation(relay.links.createInvitation({ ttlMs: 60_000 }));
  await relink(
    relay,
    p2pConfig({ relay: { enabled: true, maxReservations: 8, maxBytesPerConnection: 0 }, ...relayConfig }),
  );
  const nattedConfig = p2pConfig({ relays: [relay.address()] });
  await relink(natted, nattedConfig);
  const nat = createNat({
    config: nattedConfig,
    node: natted.links.libp2p,
    isTrusted: (peer) => natted.trust.isTrustedAgent(peer as never),
    log: silentLogger(),
    autoUpgrade: false,
  });
  nats.push(nat);
  await nat.start();
  await eventually(() => nat.reservations!.allReserved(), 'natted holds a reservation', 10_000);
  await eventually(() => relay.links.isLinked(natted.identity.agentId), 'relay sees the link');
  const nattedPeer = peerIdFromString(natted.identity.agentId);
  const connectionId = relay.links.libp2p.getConnections(nattedPeer)[0].id;
  const sameConnection = (): boolean =>
    relay.links.libp2p.getConnections(nattedPeer).some((c) => c.id === connectionId && c.status === 'open');
  return { relay, natted, friend, sameConnection };
}

describe('a relay keeps the links of agents reserved with it', () => {
  it('past the idle timeout', async () => {
    const { relay, natted, friend, sameConnection } = await network({ idleLinkMs: 300 });
    await friend.links.dial(relay.address());
    await eventually(() => relay.links.isLinked(friend.identity.agentId), 'friend linked');
    await eventually(() => !relay.links.isLinked(friend.identity.agentId), 'idle friend link closed', 3_000);
    await sleep(700);
    expect(relay.links.isLinked(natted.identity.agentId)).toBe(true);
    expect(sameConnection()).toBe(true);
  });

  it('past the link cap', async () => {
    const { relay, natted, friend, sameConnection } = await network({ maxLinks: 1 });
    await friend.links.dial(relay.address());
    await eventually(() => relay.links.isLinked(friend.identity.agentId), 'friend linked');
    await sleep(300);
    expect(relay.links.isLinked(natted.identity.agentId)).toBe(true);
    expect(sameConnection()).toBe(true);
  });
});

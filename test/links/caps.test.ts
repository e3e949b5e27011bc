import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { createLinks } from '../../agent/links/index.ts';
import { linksToClose } from '../../agent/links/link-cap.ts';
import { silentLogger } from '../../common/logger.ts';
import type { Config } from '../../config/schema.ts';
import { eventually, p2pConfig, removeTempDirs, startAgent, type TestAgent } from './helpers.ts';

const running: TestAgent[] = [];
async function agent(name: string, p2p: Partial<Config['p2p']> = {}): Promise<TestAgent> {
  const a = await startAgent(name, p2p);
  running.push(a);
  return a;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
});
afterAll(removeTempDirs);

describe('links are kept only while useful', () => {
  it('closes the least recently used link past the cap', async () => {
    const hub = await agent('hub', { maxLinks: 1 });
    const bob = await agent('bob');
    const carol = await agent('carol');
    await bob.links.acceptInvitation(hub.links.createInvitation({ ttlMs: 60_000 }));
    await eventually(() => hub.links.isLinked(bob.identity.agentId), 'bob linked');
    await carol.links.acceptInvitation(hub.links.createInvitation({ ttlMs: 60_000 }));
    await eventually(() => !hub.links.isLinked(bob.identity.agentId), 'bob dropped for carol');
    expect(hub.links.transport.neighbours()).toEqual([carol.identity.agentId]);
    await eventually(() => !bob.links.isLinked(hub.identity.agentId), 'bob sees it closed');
  });

  it('closes idle links but keeps relay links', async () => {
    const relay = await agent('relay');
    const natted = await agent('natted', { idleLinkMs: 300 });
    const friend = await agent('friend');
    // natted keeps its relay: the relay's address is configured as one of its relays.
    await natted.links.acceptInvitation(relay.links.createInvitation({ ttlMs: 60_000 }));
    await natted.links.acceptInvitation(friend.links.createInvitation({ ttlMs: 60_000 }));
    await natted.links.stop();
    natted.links = createLinks({
      identity: natted.identity,
      trust: natted.trust,
      config: p2pConfig({ idleLinkMs: 300, relays: [relay.address()] }),
      log: silentLogger(),
    });
    await natted.links.start();
    await natted.links.dial(relay.address());
    await natted.links.dial(friend.address());
    expect(natted.links.transport.neighbours()).toHaveLength(2);
    await eventually(() => !natted.links.isLinked(friend.identity.agentId), 'idle friend link closed');
    expect(natted.links.isLinked(relay.identity.agentId)).toBe(true);
  });

  it('picks the least recently used, never a kept one', () => {
    const activity = new Map([
      ['a', 30],
      ['b', 10],
      ['c', 20],
      ['relay', 0],
    ]);
    expect(linksToClose(activity, 4, () => false)).toEqual([]);
    expect(linksToClose(activity, 2, (p) => p === 'relay')).toEqual(['b', 'c']);
  });
});

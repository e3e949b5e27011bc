import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  line,
  mail,
  messagesContaining,
  progress,
  settle,
  startAgents,
  until,
  type TestNetwork,
  closeAgents,
  START_BOUND_MS,
  STOP_BOUND_MS,
} from './network.ts';

describe('real agents: an offline recipient', () => {
  let net: TestNetwork;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b', 'c', 'd']));
  }, START_BOUND_MS);
  afterAll(closeAgents, STOP_BOUND_MS);

  it('D is stopped; A mails it; D starts again from its data directory and gets the message once', async () => {
    const a = net.agent('a').node;
    await net.agent('d').node.stop();
    const id = await mail(a, net.agent('d').node, { subject: 'while you were away', text: 'are you there?' });
    // The message waits at the last relay (or at A for a path) while D is away.
    await until(() => (progress(a, id).hops.some((h) => h.hop >= 1) ? true : undefined), 'the first hop');
    await settle(3000);
    expect(progress(a, id).state).not.toBe('delivered');
    // The last relay (hop 2, C) says it holds the message for D.
    const c = net.agent('c').node.identity.agentId;
    expect(progress(a, id).hops).toContainEqual(expect.objectContaining({ hop: 2, agent: c, event: 'held' }));

    const d = (await net.restart('d')).node;
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered');
    await settle();
    const copies = await messagesContaining(d, 'are you there?');
    expect(copies).toHaveLength(1);
    expect(copies[0].toString()).toMatch(/^Subject: while you were away$/m);
    expect(net.agent('c').node.engine.heldBytes()).toBe(0);
  });
});

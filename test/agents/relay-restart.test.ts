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

describe('real agents: a relay restarting while it holds a message', () => {
  let net: TestNetwork;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b', 'c', 'd']));
  }, START_BOUND_MS);
  afterAll(closeAgents, STOP_BOUND_MS);

  // D's links come up while D is still starting: C hands on what it held before D's delivery engine
  // registered, and forgets each packet once the link took it. Such a frame used to be dropped
  // (agent/links/frame-slot.ts); it now waits for the engine.
  it('C holds a message for D, restarts, and still hands it on when D comes back (the sender is away meanwhile)', async () => {
    const a = net.agent('a').node;
    await net.agent('d').node.stop();
    const id = await mail(a, net.agent('d').node, { subject: 'kept for you', text: 'held across a restart' });
    const c = net.agent('c').node.identity.agentId;
    await until(
      () => (progress(a, id).hops.some((h) => h.event === 'held' && h.agent === c) ? true : undefined),
      'C to hold the message',
    );
    // With the sender gone, only what C kept can reach D: no re-sent copy can stand in for it.
    await a.stop();
    const relay = (await net.restart('c')).node;
    expect(relay.engine.heldBytes()).toBeGreaterThan(0);

    const d = (await net.restart('d')).node;
    await until(
      async () => ((await messagesContaining(d, 'held across a restart')).length > 0 ? true : undefined),
      'the held message at D',
    );
    await until(() => (relay.engine.heldBytes() === 0 ? true : undefined), 'C to hold nothing');

    // The sender comes back, re-sends, learns it was delivered; D keeps one copy.
    const sender = (await net.restart('a')).node;
    await until(() => (progress(sender, id).state === 'delivered' ? true : undefined), 'delivered');
    await settle();
    expect(await messagesContaining(d, 'held across a restart')).toHaveLength(1);
  });
});

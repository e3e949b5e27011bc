import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  line,
  mail,
  messagesContaining,
  progress,
  startAgents,
  until,
  type TestNetwork,
  closeAgents,
  START_BOUND_MS,
  STOP_BOUND_MS,
} from './network.ts';

describe('real agents on a line A–B–C–D', () => {
  let net: TestNetwork;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b', 'c', 'd']));
  }, START_BOUND_MS);
  afterAll(closeAgents, STOP_BOUND_MS);

  it('A reaches D (a contact, not a neighbour) through B and C by discovery; D reads it from its mailbox; A sees every hop and gets "Delivered"', async () => {
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => net.agent(n).node);
    // A knows D's key but does not trust it as a neighbour: the path must be discovered.
    expect(a.trust.entity(d.identity.fingerprint)).toMatchObject({ contact: true, trusted: false });
    expect(a.links.isLinked(d.identity.agentId)).toBe(false);

    const id = await mail(a, d, { subject: 'over three hops', text: 'hello D, this is A' });
    const [received] = await until(async () => {
      const found = await messagesContaining(d, 'hello D, this is A');
      return found.length > 0 ? found : undefined;
    }, 'the message in D’s INBOX');
    expect(received.toString()).toMatch(/^Subject: over three hops$/m);
    expect(received.toString()).toMatch(/kith=pass header\.from=a@demo\.kith/);

    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered');
    const hops = progress(a, id).hops;
    // Each hop reached once, in order (a CI run beside a CPU hog saw D's twice: progressOf showed a
    // record both as a row and as pending while the WAL's sync ran; test/queue/outbox).
    const reached = hops.filter((h) => h.event === 'reached');
    expect(reached.map((h) => [h.hop, h.agent])).toEqual([
      [1, b.identity.agentId],
      [2, c.identity.agentId],
      [3, d.identity.agentId],
    ]);
    expect(hops.at(-1)).toMatchObject({ hop: -1, event: 'delivered' });
    for (let i = 1; i < hops.length; i++) expect(hops[i].at).toBeGreaterThanOrEqual(hops[i - 1].at);
    expect(a.engine.metrics.get('discovery_path_found')).toBeGreaterThan(0);
    expect(b.engine.metrics.get('forwarded')).toBeGreaterThan(0);
    expect(c.engine.metrics.get('forwarded')).toBeGreaterThan(0);

    const [status] = await until(async () => {
      const found = (await messagesContaining(a, 'over three hops')).filter((m) =>
        /^Subject: Delivered:/m.test(m.toString()),
      );
      return found.length > 0 ? found : undefined;
    }, 'the "Delivered" status email at A');
    expect(status.toString()).toMatch(/report-type="?delivery-status/);
    expect(await messagesContaining(d, 'hello D, this is A')).toHaveLength(1);
  });
});

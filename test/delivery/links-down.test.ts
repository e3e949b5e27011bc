// The sender when its links are down (closed while idle, issue 10). Discovery's timeout and the
// stall timeout are an hour here: a test that passes cannot have waited for either.
import { afterAll, afterEach, describe, expect, test } from '@jest/globals';
import { firstHopsToDial } from '../../agent/delivery/decide.ts';
import { Simulation, type SimAgent } from '../../agent/sim/sim.ts';
import type { AgentId } from '../../common/ids.ts';
import { tempDir } from '../helpers/tmp.ts';
import { newMessageId, recordEvents } from './helpers.ts';

const HOUR = 3_600_000;

describe('the sender without open links', () => {
  let sim: Simulation | undefined;
  const spool = tempDir('kith-links-down-');
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });
  afterAll(() => spool.remove());

  test('firstHopsToDial: nothing while a candidate is linked, else the candidates not avoided, once each', () => {
    const linked = new Set(['b']);
    expect(firstHopsToDial(['c', 'b'], (x) => linked.has(x), new Set())).toEqual([]);
    expect(firstHopsToDial(['c', 'd', 'c', 'e'], (x) => linked.has(x), new Set(['d']))).toEqual(['c', 'e']);
    expect(firstHopsToDial([], () => false, new Set())).toEqual([]);
  });

  test('with no neighbour linked, discovery returns at once instead of waiting out its timeout', async () => {
    sim = new Simulation({ delivery: { stallTimeoutMs: HOUR }, discovery: { timeoutMs: HOUR } });
    const [a, b, c] = sim.addAgents(3);
    sim.connect(a, b);
    sim.connect(b, c);
    await sim.start();
    sim.network.unlink(a.keys.id, b.keys.id);
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    await a.engine.send({ id, to: c.entity, source: { kind: 'bytes', data: Buffer.from('hi') } });
    const stalled = await rec.waitFor((e) => e.kind === 'stalled' && e.id === id, HOUR);
    expect(stalled).toMatchObject({ action: 'waiting for a path', lastHop: 0 });
    expect(a.engine.metrics.get('discovery_nobody_to_ask')).toBeGreaterThan(0);
    // The link comes back: the message goes on by itself.
    sim.network.link(a.keys.id, b.keys.id);
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === id, HOUR);
    expect(c.inbox.map((m) => m.id)).toEqual([id]);
  });

  test('a first hop whose link closed while idle is dialled for the next message, which is delivered', async () => {
    // Filled in once the simulation and agent 0 exist (the dial below runs only after that).
    const ref: { network?: Simulation['network']; self?: AgentId } = {};
    const dialled: AgentId[] = [];
    sim = new Simulation({
      delivery: { stallTimeoutMs: HOUR, spoolDir: spool.path },
      discovery: { timeoutMs: HOUR },
      // Agent 0 dials as a node's link layer would: the link opens (the others stay as they are).
      customize: (index) =>
        index === 0
          ? {
              connect: async (agent) => {
                dialled.push(agent);
                ref.network!.link(ref.self!, agent);
              },
            }
          : undefined,
    });
    ref.network = sim.network;
    const [a, b, c]: SimAgent[] = sim.addAgents(3);
    ref.self = a.keys.id;
    sim.connect(a, b);
    sim.connect(b, c);
    await sim.start();
    const rec = recordEvents(a.engine);
    const first = newMessageId();
    await a.engine.send({ id: first, to: c.entity, source: { kind: 'bytes', data: Buffer.from('one') } });
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === first, HOUR);
    expect(dialled).toEqual([]);

    // Quiet for a while: the idle link closes. The next message needs it, and opens it.
    sim.network.unlink(a.keys.id, b.keys.id);
    const second = newMessageId();
    // A large one, so the chunks follow the manifest over the link it opened.
    const big = Buffer.alloc(1024 * 1024, 7);
    await a.engine.send({ id: second, to: c.entity, source: { kind: 'bytes', data: big } });
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === second, HOUR);
    expect(dialled).toEqual([b.keys.id]);
    expect(rec.events.some((e) => e.kind === 'stalled' && e.id === second)).toBe(false);
    expect(c.inbox.map((m) => m.id)).toEqual([first, second]);
  });
});

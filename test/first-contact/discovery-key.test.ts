import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, test } from '@jest/globals';
import { KithError } from '../../common/errors.ts';
import type { Fingerprint } from '../../common/ids.ts';
import type { TrustView } from '../../agent/routing/trust.ts';
import { Simulation, type SimAgent } from '../../agent/sim/sim.ts';

/**
 * Key discovery at the protocol level, over the simulator's memory transport: the simulator's
 * trust has no key methods, so each test gives its agents a small key book. A "key" here is 64
 * random bytes whose genuine owner the test knows; learnEntityKey accepts only the genuine one,
 * as the trust store accepts only a key with the asked-for fingerprint.
 */
interface KeyBook {
  held: Map<Fingerprint, Uint8Array>;
  learned: Fingerprint[];
}

function withKeys(agent: SimAgent, genuine: Map<Fingerprint, Uint8Array>): KeyBook {
  const book: KeyBook = { held: new Map(), learned: [] };
  const trust = agent.trust as TrustView;
  trust.hasEntityKey = (entity) => book.held.has(entity);
  trust.entityKey = async (entity) => book.held.get(entity);
  trust.learnEntityKey = async (entity, key) => {
    const real = genuine.get(entity);
    if (!real || !Buffer.from(real).equals(Buffer.from(key))) {
      throw new KithError('ERR_FINGERPRINT_MISMATCH', 'not the key of this fingerprint');
    }
    book.held.set(entity, key);
    book.learned.push(entity);
  };
  return book;
}

function keyOf(entity: Fingerprint): Uint8Array {
  return createHash('sha512').update(entity).digest();
}

describe('discovery answers carry the target entity key to an asker that lacks it', () => {
  let sim: Simulation;
  afterEach(async () => sim?.stop());

  async function line(n: number): Promise<{ agents: SimAgent[]; books: KeyBook[] }> {
    sim = new Simulation({ quiesce: true });
    const agents = sim.addAgents(n);
    for (let i = 1; i < n; i++) sim.connect(agents[i - 1], agents[i]);
    const genuine = new Map(agents.map((a) => [a.entity, keyOf(a.entity)]));
    const books = agents.map((a) => withKeys(a, genuine));
    // Everyone holds its own key and its neighbours' (they met through invitations).
    agents.forEach((a, i) => {
      for (const j of [i - 1, i, i + 1]) {
        if (agents[j]) books[i].held.set(agents[j].entity, keyOf(agents[j].entity));
      }
    });
    await sim.start();
    return { agents, books };
  }

  test('A learns D’s key from C (who trusts D), relayed back through B, and the path is usable', async () => {
    const { agents, books } = await line(4);
    const [a, , , d] = agents;
    expect(books[0].held.has(d.entity)).toBe(false);
    const paths = await a.engine.discovery.find(d.entity);
    expect(paths.length).toBeGreaterThan(0);
    expect(books[0].learned).toEqual([d.entity]);
    expect(Buffer.from(books[0].held.get(d.entity)!).equals(Buffer.from(keyOf(d.entity)))).toBe(true);
    expect(a.engine.metrics.get('discovery_key_learned')).toBe(1);
    for (const x of agents) expect(x.engine.metrics.rejected()).toBe(0);
  });

  test('an asker that holds the key does not ask for it, and learns nothing', async () => {
    const { agents, books } = await line(3);
    const [a, , c] = agents;
    books[0].held.set(c.entity, keyOf(c.entity));
    const sent: number[] = [];
    const send = agents[1].transport.send.bind(agents[1].transport);
    agents[1].transport.send = (to, frame) => {
      if (to === a.keys.id) sent.push(frame.length);
      return send(to, frame);
    };
    const paths = await a.engine.discovery.find(c.entity);
    expect(paths.length).toBeGreaterThan(0);
    expect(books[0].learned).toEqual([]);
    expect(a.engine.metrics.get('discovery_key_learned')).toBe(0);
    // The answer is a bare path record: no key field (64 bytes here) appended.
    const withKey = await (async () => {
      books[0].held.delete(c.entity);
      a.engine.discovery.cache.dropAgent(agents[1].keys.id);
      await a.engine.discovery.find(c.entity);
      return sent[sent.length - 1];
    })();
    expect(withKey - sent[0]).toBe(2 + 64);
  });

  test('a key that is not the target’s is refused and counted; the path that came with it is not kept', async () => {
    const { agents, books } = await line(3);
    const [a, , c] = agents;
    books[1].held.set(c.entity, randomBytes(64)); // B hands out a wrong key for C
    const paths = await a.engine.discovery.find(c.entity);
    expect(paths).toEqual([]);
    expect(books[0].held.has(c.entity)).toBe(false);
    expect(a.engine.metrics.get('rejected_discovery_key')).toBeGreaterThan(0);
    expect(a.engine.discovery.cache.get(c.entity)).toEqual([]);
  });

  test('simulated agents without key methods still discover (plain requests, no key field)', async () => {
    sim = new Simulation({ quiesce: true });
    const [a, b, c] = sim.addAgents(3);
    sim.connect(a, b);
    sim.connect(b, c);
    await sim.start();
    expect((await a.engine.discovery.find(c.entity)).length).toBeGreaterThan(0);
    expect(a.engine.metrics.rejected()).toBe(0);
  });
});

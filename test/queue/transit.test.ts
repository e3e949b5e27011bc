import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { openRedis, type RedisHandle } from '../../agent/queue/connection.ts';
import { TransitQueue, type TransitProgress } from '../../agent/queue/transit.ts';
import { SqliteDeliveryStore } from '../../agent/delivery/sqlite-store.ts';
import { Simulation, type SimAgent } from '../../agent/sim/sim.ts';
import type { AgentId, MessageId } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { tempDir } from '../helpers/tmp.ts';
import { newMessageId, recordEvents } from '../delivery/helpers.ts';
import { HANG_MS } from '../helpers/hang.ts';

async function until(check: () => boolean | Promise<boolean>, timeoutMs = HANG_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('transit queue: a BullMQ job per packet held for an unreachable next hop', () => {
  let dir: ReturnType<typeof tempDir>;
  let db: Db;
  let redis: RedisHandle;
  let sim: Simulation | undefined;
  let transit: TransitQueue | undefined;
  beforeEach(async () => {
    dir = tempDir();
    db = openDatabase(join(dir.path, 'relay.db'));
    redis = await openRedis({ dir: dir.path, binary: 'redis-server', log: silentLogger() });
  });
  afterEach(async () => {
    await transit?.stop();
    await sim?.stop();
    transit = undefined;
    sim = undefined;
    await redis.stop();
    db.close();
    dir.remove();
  });

  /**
   * A – B – C with B on SQLite. C is offline and its link does not come back by itself: only a
   * successful dial by B's transit queue brings it up (as a real node's link layer would).
   */
  async function line(dial: (c: SimAgent) => Promise<void>) {
    sim = new Simulation({
      delivery: { stallTimeoutMs: 60_000 },
      customize: (i) => (i === 1 ? { store: new SqliteDeliveryStore(db) } : undefined),
    });
    const [a, b, c] = sim.addAgents(3);
    sim.connect(a, b);
    sim.connect(b, c);
    await sim.start();
    sim.network.setOnline(c.keys.id, false);
    const dials: AgentId[] = [];
    transit = new TransitQueue({
      connection: redis.connection,
      prefix: 'kith-transit-test',
      log: silentLogger(),
      relay: b.engine,
      dial: async (agent) => {
        dials.push(agent);
        await dial(c);
      },
      firstDelayMs: 50,
      retryDelay: (n) => 100 * 2 ** (n - 1),
    });
    await transit.start();
    return { a, b, c, dials };
  }

  it('retries with backoff, dialling the next hop, records progress, and is removed once the packet is handed on', async () => {
    let tries = 0;
    const { a, b, c, dials } = await line(async (target) => {
      tries++;
      if (tries < 3) throw new Error('no route to the next hop');
      sim!.network.setOnline(target.keys.id, true);
    });
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    await a.engine.send({
      id,
      to: c.entity,
      source: { kind: 'bytes', data: Buffer.from('through the queue') },
    });
    await rec.waitFor((e) => e.kind === 'held');
    const [held] = b.engine.heldIndex();
    expect(held.next).toBe(c.keys.id);
    await until(async () => {
      const progress = (await transit!.job(held.seq))?.progress as TransitProgress | undefined;
      return progress?.attempts === 2;
    });
    const progress = (await transit!.job(held.seq))?.progress as TransitProgress;
    expect(progress).toMatchObject({ next: c.keys.id, attempts: 2, lastError: 'no route to the next hop' });
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);
    expect(dials).toEqual([c.keys.id, c.keys.id, c.keys.id]);
    expect(c.inbox).toHaveLength(1);
    expect(b.engine.isHeld(held.seq)).toBe(false);
    await until(async () => (await transit!.job(held.seq)) === undefined);
  });

  it('re-creates a job Redis lost from delivery_held, and drops it when the packet expires', async () => {
    const { a, b, c } = await line(async () => {
      throw new Error('still unreachable');
    });
    const rec = recordEvents(a.engine);
    await a.engine.send({
      id: newMessageId() as MessageId,
      to: c.entity,
      source: { kind: 'bytes', data: Buffer.from('x') },
    });
    await rec.waitFor((e) => e.kind === 'held');
    const [held] = b.engine.heldIndex();
    await until(async () => (await transit!.job(held.seq)) !== undefined);
    const client = new Redis(redis.connection);
    await client.flushall();
    client.disconnect();
    expect(await transit!.job(held.seq)).toBeUndefined();
    expect(await transit!.reconcile()).toBe(1);
    expect(await transit!.job(held.seq)).toBeDefined();
    expect(await transit!.reconcile()).toBe(0);
    // The relay prunes it at its deadline; the job finds it gone and ends.
    (b.store as SqliteDeliveryStore).pruneHeld(held.expiresAt + 1);
    await until(async () => (await transit!.job(held.seq)) === undefined);
  });
});

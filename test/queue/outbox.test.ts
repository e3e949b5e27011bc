import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { openRedis, type RedisHandle } from '../../agent/queue/connection.ts';
import { Outbox, type OutboxEntry } from '../../agent/queue/outbox.ts';
import { giveUpCause, nextRetryDelay, shouldGiveUp } from '../../agent/queue/policy.ts';
import type { Fingerprint, MessageId } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { groupCommitOf } from '../../store/group-commit.ts';
import { heldSync } from '../helpers/held-sync.ts';
import { tempDir } from '../helpers/tmp.ts';
import { HANG_MS } from '../helpers/hang.ts';

const ALICE = 'A'.repeat(40) as Fingerprint;
const BOB = 'B'.repeat(40) as Fingerprint;
const id = (n: number): MessageId => n.toString(16).padStart(32, '0') as MessageId;

async function until(check: () => boolean | Promise<boolean>, timeoutMs = HANG_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('outbox (SQLite + BullMQ)', () => {
  let dir: ReturnType<typeof tempDir>;
  let db: Db;
  let redis: RedisHandle;
  let outbox: Outbox | undefined;
  beforeEach(async () => {
    dir = tempDir();
    db = openDatabase(join(dir.path, 'kith.db'));
    redis = await openRedis({ dir: dir.path, binary: 'redis-server', log: silentLogger() });
  });
  afterEach(async () => {
    await outbox?.stop();
    outbox = undefined;
    await redis.stop();
    db.close();
    dir.remove();
  });

  function makeOutbox(attempt: (e: OutboxEntry) => Promise<void>, given: string[] = []): Outbox {
    return new Outbox({
      db,
      connection: redis.connection,
      prefix: 'kith-test',
      log: silentLogger(),
      maxAgeMs: 60_000,
      attempt,
      onGiveUp: (entry) => given.push(entry.id),
    });
  }

  it('retries with backoff while the next hop is unreachable, and records hops in the job progress', async () => {
    const attempts: number[] = [];
    outbox = makeOutbox(async (entry) => {
      attempts.push(entry.attempts);
      if (attempts.length < 3) throw new Error('next hop unreachable');
    });
    await outbox.start();
    await outbox.submit({ id: id(1), sender: ALICE, recipient: BOB, rawPath: '/x', size: 10 });
    await until(() => attempts.length === 3);
    expect(attempts).toEqual([1, 2, 3]);
    await outbox.recordHop(id(1), { hop: 1, agent: 'carol-agent', event: 'forwarded', at: 1000 });
    await outbox.recordHop(id(1), { hop: 2, event: 'delivered', at: 2000 });
    await outbox.finish(id(1), 'delivered');
    const queue = new Queue('outbox', { connection: redis.connection, prefix: 'kith-test' });
    const job = await queue.getJob(id(1));
    expect(job?.progress).toEqual({
      state: 'delivered',
      hops: [
        { hop: 1, agent: 'carol-agent', event: 'forwarded', at: 1000 },
        { hop: 2, event: 'delivered', at: 2000 },
      ],
    });
    await queue.close();
  });

  it('re-creates jobs lost with Redis from the durable rows', async () => {
    let delivered = false;
    let allow = false;
    let tried = 0;
    outbox = makeOutbox(async () => {
      tried++;
      if (!allow) throw new Error('no path yet');
      delivered = true;
    });
    await outbox.start();
    await outbox.submit({ id: id(2), sender: ALICE, recipient: BOB, rawPath: '/x', size: 10 });
    // submit() does not wait for the job: once it has run, Redis has it
    await until(() => tried > 0);
    // Redis loses everything (a restart without persistence, a flushed instance).
    const client = new Redis(redis.connection);
    await client.flushall();
    client.disconnect();
    allow = true;
    expect(await outbox.reconcile()).toBe(1);
    await until(() => delivered);
    expect(outbox.get(id(2))?.state).toBe('in-flight');
  });

  it('accepts a submission while Redis is down and sends it once Redis is back', async () => {
    let delivered = 0;
    outbox = makeOutbox(async () => {
      delivered++;
    });
    await outbox.start();
    await redis.private!.stop();
    await outbox.submit({ id: id(3), sender: ALICE, recipient: BOB, rawPath: '/x', size: 10 });
    expect(outbox.get(id(3))?.state).toBe('queued');
    await redis.private!.start();
    await until(() => delivered === 1);
    expect(delivered).toBe(1);
  });

  it('commits hop records arriving together in one go; each resolves once durable, a bad one fails alone', async () => {
    outbox = makeOutbox(async () => {
      throw new Error('no path yet');
    });
    await outbox.start();
    await outbox.submit({ id: id(4), sender: ALICE, recipient: BOB, rawPath: '/x', size: 10 });
    const hops = [1, 2, 3].map((hop) => ({ hop, agent: `agent-${hop}`, event: 'reached', at: 1000 + hop }));
    const results = await Promise.allSettled([
      ...hops.map((h) => outbox!.recordHop(id(4), h)),
      // no outbox row: the foreign key refuses it
      outbox.recordHop(id(99), { hop: 1, event: 'reached', at: 1 }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    const rows = db.prepare('SELECT hop FROM outbox_hops WHERE id = ? ORDER BY hop').all(id(4));
    expect(rows).toEqual([{ hop: 1 }, { hop: 2 }, { hop: 3 }]);
    // a reader right after a record, before its commit, sees it
    void outbox.recordHop(id(4), { hop: 4, event: 'held', at: 2000 });
    expect(outbox.progressOf(id(4)).hops.map((h) => h.hop)).toEqual([1, 2, 3, 4]);
  });

  it('shows a hop once while its commit waits for the WAL sync (kith track listed it twice)', async () => {
    const held = heldSync();
    groupCommitOf(db, held.sync); // before any write: this connection's group commit syncs by hand
    outbox = makeOutbox(async () => {
      throw new Error('no path yet');
    });
    await outbox.start();
    await outbox.submit({ id: id(5), sender: ALICE, recipient: BOB, rawPath: '/x', size: 10 });
    const recorded = outbox.recordHop(id(5), { hop: 3, agent: 'dave-agent', event: 'reached', at: 3000 });
    const wal = await held.next(); // committed (the row is in the table), not yet durable
    const rows = db.prepare('SELECT count(*) AS n FROM outbox_hops WHERE id = ?').get(id(5));
    const shown = outbox.progressOf(id(5)).hops;
    wal.done();
    (await held.next()).done(); // the WAL's directory entry, once
    await recorded;
    expect(rows).toEqual({ n: 1 });
    expect(shown).toEqual([{ hop: 3, agent: 'dave-agent', event: 'reached', at: 3000 }]);
    expect(outbox.progressOf(id(5)).hops).toHaveLength(1);
  });

  it('gives up an entry older than the maximum age', () => {
    expect(shouldGiveUp(0, 61_000, 60_000)).toBe(true);
    expect(shouldGiveUp(0, 59_000, 60_000)).toBe(false);
    expect([1, 2, 3, 20].map(nextRetryDelay)).toEqual([1000, 2000, 4000, 300_000]);
  });

  it('gives up with the real cause: no hop ever reached is no-path, else expired at the last hop', () => {
    expect(giveUpCause([]).cause).toBe('no-path');
    expect(giveUpCause([{ hop: 0, event: 'stalled: waiting for a path' }]).cause).toBe('no-path');
    const hops = [
      { hop: 1, agent: 'carol-agent', event: 'reached', at: 1 },
      { hop: 2, agent: 'dave-agent', event: 'reached', at: 2 },
      { hop: 2, event: 'stalled: alternate path', at: 3 },
    ];
    expect(giveUpCause(hops)).toEqual({
      cause: 'expired',
      reason:
        'expired: it last reached the agent dave-agent (hop 2 of its path) and was not delivered in time',
    });
    expect(giveUpCause([{ hop: 1, event: 'held' }]).reason).toContain('hop 1 of its path');
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { KithNode } from '../../agent/node.ts';
import type { MessageId } from '../../common/ids.ts';
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

/** The outbox jobs of a node that Redis holds now (BullMQ, the node's own key prefix). */
async function jobsIn(net: TestNetwork, node: KithNode, ids: MessageId[]): Promise<MessageId[]> {
  const queue = new Queue('outbox', { connection: net.redis.connection, prefix: node.config.redis.prefix });
  try {
    const found: MessageId[] = [];
    for (const id of ids) if (await queue.getJob(id)) found.push(id);
    return found;
  } finally {
    await queue.close();
  }
}

describe('real agents: the shared Redis lost mid-flow', () => {
  let net: TestNetwork;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b', 'c']));
  }, START_BOUND_MS);
  afterAll(closeAgents, STOP_BOUND_MS);

  /**
   * Mails `count` messages from a to c while c is away, then more while Redis is gone (`loseRedis`
   * does that and brings it back). c comes back; every message must arrive exactly once.
   */
  async function roundTrip(tag: string, loseRedis: () => Promise<() => Promise<void>>): Promise<void> {
    const a = net.agent('a').node;
    await net.agent('c').node.stop();
    const before: MessageId[] = [];
    for (let i = 0; i < 3; i++) {
      before.push(await mail(a, net.agent('c').node, { subject: `${tag} ${i}`, text: `${tag} body ${i}` }));
    }
    // Held at b (the path a–b–c is discovered; c is away), the job has its first hop.
    await until(
      () => (before.every((id) => progress(a, id).hops.some((h) => h.event === 'held')) ? true : undefined),
      'the messages held at b',
    );
    const restore = await loseRedis();
    const during: MessageId[] = [];
    for (let i = 3; i < 5; i++) {
      // SMTP still answers 250: the message is durable in SQLite without Redis.
      during.push(await mail(a, net.agent('c').node, { subject: `${tag} ${i}`, text: `${tag} body ${i}` }));
    }
    await restore();
    const ids = [...before, ...during];
    // No help from the test: the node re-creates what Redis lost as soon as Redis is back.
    await until(
      async () => ((await jobsIn(net, a, ids)).length === ids.length ? true : undefined),
      'every outbox job back in Redis',
    );

    const c = (await net.restart('c')).node;
    await until(
      () => (ids.every((id) => progress(a, id).state === 'delivered') ? true : undefined),
      'every message delivered',
    );
    await settle();
    for (let i = 0; i < 5; i++) expect(await messagesContaining(c, `${tag} body ${i}`)).toHaveLength(1);
    // The job progress in Redis shows the journey too (what `kith track` follows).
    const queue = new Queue('outbox', { connection: net.redis.connection, prefix: a.config.redis.prefix });
    try {
      for (const id of ids) {
        const job = await until(async () => {
          const found = await queue.getJob(id);
          return (found?.progress as { state?: string })?.state === 'delivered' ? found : undefined;
        }, `job ${id} to show "delivered"`);
        expect((job.progress as { hops: { event: string }[] }).hops.at(-1)?.event).toBe('delivered');
      }
    } finally {
      await queue.close();
    }
  }

  it('redis-server killed (SIGKILL) and restarted from its append-only file: every message arrives once', async () => {
    const redis = net.redis.private!;
    await roundTrip('killed', async () => {
      await kill(redis.pid!);
      return async () => void (await redis.start());
    });
  });

  it('Redis restarted empty (its files lost): the jobs are re-created from SQLite and every message arrives once', async () => {
    const redis = net.redis.private!;
    await roundTrip('emptied', async () => {
      await kill(redis.pid!);
      return async () => {
        await rm(join(net.dir, 'net', 'redis', 'appendonlydir'), { recursive: true, force: true });
        await redis.start();
      };
    });
  });

  it('FLUSHALL on a running Redis: reconcile (run every 30 s) re-creates the lost job from SQLite', async () => {
    const a = net.agent('a').node;
    const c = net.agent('c').node;
    await c.stop();
    const id = await mail(a, c, { subject: 'after flush', text: 'after flush body' });
    await until(() => (progress(a, id).hops.some((h) => h.event === 'held') ? true : undefined), 'held');
    const client = new Redis({ ...net.redis.connection, maxRetriesPerRequest: 1 });
    try {
      await client.flushall();
    } finally {
      client.disconnect();
    }
    expect(await jobsIn(net, a, [id])).toEqual([]);
    await a.outbox.reconcile();
    expect(await jobsIn(net, a, [id])).toEqual([id]);
    const back = (await net.restart('c')).node;
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered');
    await settle();
    expect(await messagesContaining(back, 'after flush body')).toHaveLength(1);
  });
});

async function kill(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  await until(() => (alive(pid) ? undefined : true), 'redis to die');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

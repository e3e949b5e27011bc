import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Redis } from 'ioredis';
import { join } from 'node:path';
import {
  burst,
  expectDeliveredOnce,
  NOTHING_LOST,
  faultSeed,
  seeded,
  startRelayLine,
  stopAll,
  submitAll,
  type ProcessNode,
  type RelayLine,
  until,
} from '../helpers/kith-nodes.ts';
import { tempDir } from '../helpers/tmp.ts';
import { FAULT_CASE_MS } from '../helpers/hang.ts';

// The private redis-server of the sender and of the relay (outbox and transit jobs) killed with
// -9, or emptied with FLUSHALL, at a seeded random point of a 50-message burst. The nodes keep
// running; SQLite holds the truth, so every message must still arrive exactly once, and the
// sender get one "Delivered" status email for each.
/** Runs one command on the node's private Redis (its unix socket in the data directory). */
async function withRedis<T>(node: ProcessNode, command: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ path: join(node.dataDir, 'redis', 'redis.sock'), lazyConnect: true });
  try {
    await redis.connect();
    return await command(redis);
  } finally {
    redis.disconnect();
  }
}

const ping = (node: ProcessNode) => withRedis(node, (redis) => redis.ping());

describe('Redis lost during a 50-message burst, alice → carol → bob', () => {
  const dir = tempDir('kith-faults-redis-');
  let line: RelayLine;

  beforeAll(async () => {
    line = await startRelayLine(dir.path);
  });

  afterAll(async () => {
    if (line) await stopAll(line.all);
    dir.remove();
  });

  const loseRedisDuringBurst = async (label: string, lose: (node: ProcessNode) => Promise<void>) => {
    const seed = faultSeed(label);
    const random = seeded(seed);
    const { sender, relay, recipient } = line;
    const mails = burst(label, sender.options.email, recipient.options.email, { count: 50, big: 1, random });
    const at = 5 + Math.floor(random() * 40);
    process.stdout.write(`${label}: at message ${at}, at ${sender.name} and ${relay.name}\n`);
    await submitAll(sender, recipient.options.email, mails, {
      afterAccepted: async (i) => {
        if (i === at) await Promise.all([lose(sender), lose(relay)]);
      },
    });
    const result = await expectDeliveredOnce(mails, recipient, sender, { label, seed, nodes: line.all });
    expect(result).toEqual(NOTHING_LOST);
  };

  test(
    'kill -9 of the redis-server: the node starts it again',
    async () => {
      const killed = new Map<ProcessNode, number>();
      await loseRedisDuringBurst('redis kill', async (node) => {
        const pid = node.redisPid();
        killed.set(node, pid);
        process.kill(pid, 'SIGKILL');
      });
      // the queues work again (retries, `kith track`): a new redis-server of the node's own answers
      for (const [node, pid] of killed) {
        const fresh = await until(() => {
          try {
            const now = node.redisPid();
            return now !== pid ? now : undefined;
          } catch {
            return undefined;
          }
        }, `${node.name}'s redis-server to be back`);
        expect(fresh).not.toBe(pid);
        expect(await ping(node)).toBe('PONG');
      }
    },
    FAULT_CASE_MS,
  );

  test(
    'FLUSHALL',
    () =>
      loseRedisDuringBurst('redis flushall', async (node) => {
        expect(await withRedis(node, (redis) => redis.flushall())).toBe('OK');
      }),
    FAULT_CASE_MS,
  );
});

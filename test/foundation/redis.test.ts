import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from '@jest/globals';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { openRedis } from '../../agent/queue/connection.ts';
import { silentLogger } from '../../common/logger.ts';
import { codeOf } from '../helpers/errors.ts';
import { tempDir } from '../helpers/tmp.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('private redis-server', () => {
  it('starts, carries BullMQ jobs with an append-only file, and stops', async () => {
    const dir = tempDir();
    const redis = await openRedis({ dir: dir.path, binary: 'redis-server', log: silentLogger() });
    const pid = redis.private!.pid!;
    try {
      expect(alive(pid)).toBe(true);
      const connection = redis.connection;
      const queue = new Queue('probe', { connection, prefix: 'kith-test' });
      const events = new QueueEvents('probe', { connection, prefix: 'kith-test' });
      const worker = new Worker('probe', async (job) => ({ doubled: (job.data as { n: number }).n * 2 }), {
        connection,
        prefix: 'kith-test',
      });
      await events.waitUntilReady();
      const job = await queue.add('double', { n: 21 });
      expect(await job.waitUntilFinished(events, 10_000)).toEqual({ doubled: 42 });
      await worker.close();
      await events.close();
      await queue.close();
      expect(existsSync(`${dir.path}/appendonlydir`)).toBe(true);
    } finally {
      await redis.stop();
      dir.remove();
    }
    expect(alive(pid)).toBe(false);
  });

  it('says how to install redis-server when it is missing', async () => {
    const dir = tempDir();
    try {
      expect(
        await codeOf(openRedis({ dir: dir.path, binary: 'redis-server-missing', log: silentLogger() })),
      ).toBe('ERR_REDIS_MISSING');
    } finally {
      dir.remove();
    }
  });

  it('reports an unreachable configured Redis', async () => {
    const dir = tempDir();
    try {
      const code = await codeOf(
        openRedis({
          url: 'redis://127.0.0.1:1/0',
          dir: dir.path,
          binary: 'redis-server',
          log: silentLogger(),
        }),
      );
      expect(code).toBe('ERR_REDIS_UNREACHABLE');
    } finally {
      dir.remove();
    }
  });

  it('a server that hangs up without PONG is an error, not a silent exit', async () => {
    const notRedis = createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((r) => notRedis.listen(0, '127.0.0.1', () => r()));
    const { port } = notRedis.address() as { port: number };
    const dir = tempDir();
    try {
      const opening = openRedis({
        url: `redis://127.0.0.1:${port}`,
        dir: dir.path,
        binary: 'redis-server',
        log: silentLogger(),
      });
      await expect(opening).rejects.toMatchObject({
        code: 'ERR_REDIS_UNREACHABLE',
        message: `Redis at 127.0.0.1:${port} closed the connection without answering PING: is it a Redis server?`,
      });
    } finally {
      notRedis.close();
      dir.remove();
    }
  });
});

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection, createServer } from 'node:net';
import { describe, expect, it } from '@jest/globals';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { openRedis } from '../../agent/queue/connection.ts';
import type { RedisConnection } from '../../agent/queue/redis-server.ts';
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

/** One raw RESP command over the unix socket; the reply as text. */
async function command(connection: RedisConnection, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(connection.path!);
    let reply = '';
    socket.once('error', reject);
    socket.on('data', (d: Buffer) => {
      reply += d.toString();
      if (reply.endsWith('\r\n')) {
        socket.destroy();
        resolve(reply);
      }
    });
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
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

  it('writes redis.pid, and a start stops a redis-server a dead node left on the same directory', async () => {
    const dir = tempDir();
    // The first one stands for a node that died without stopping its redis-server.
    const left = await openRedis({ dir: dir.path, binary: 'redis-server', log: silentLogger() });
    const leftPid = left.private!.pid!;
    let next: Awaited<ReturnType<typeof openRedis>> | undefined;
    try {
      expect(readFileSync(join(dir.path, 'redis.pid'), 'utf8').trim()).toBe(String(leftPid));
      expect(await command(left.connection, 'SET', 'kept', 'yes')).toBe('+OK\r\n');
      next = await openRedis({ dir: dir.path, binary: 'redis-server', log: silentLogger() });
      expect(alive(leftPid)).toBe(false);
      expect(alive(next.private!.pid!)).toBe(true);
      expect(readFileSync(join(dir.path, 'redis.pid'), 'utf8').trim()).toBe(String(next.private!.pid));
      expect(await command(next.connection, 'GET', 'kept')).toBe('$3\r\nyes\r\n');
    } finally {
      await next?.stop();
      await left.stop();
      dir.remove();
    }
  });

  it('leaves a process alone whose pid is in redis.pid but is not redis-server of this directory', async () => {
    const dir = tempDir();
    writeFileSync(join(dir.path, 'redis.pid'), String(process.pid));
    const redis = await openRedis({ dir: dir.path, binary: 'redis-server', log: silentLogger() });
    try {
      expect(alive(redis.private!.pid!)).toBe(true);
    } finally {
      await redis.stop();
      dir.remove();
    }
  });
});

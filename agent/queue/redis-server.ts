import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import type { RedisOptions } from 'ioredis';
import { KithError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';

/** How to reach Redis: ioredis options (a unix socket or host/port, maybe a password). */
export type RedisConnection = Pick<RedisOptions, 'path' | 'host' | 'port' | 'password' | 'db' | 'username'>;

export function connectionFromUrl(url: string): RedisConnection {
  const u = new URL(url);
  if (u.protocol !== 'redis:')
    throw new KithError('ERR_CONFIG_INVALID', `redis.url must be redis://…, got ${url}`);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    password: u.password ? decodeURIComponent(u.password) : undefined,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined,
  };
}

/** Checks that Redis answers PING (a plain socket: no client library state to clean up). */
export async function pingRedis(connection: RedisConnection, timeoutMs = 3000): Promise<void> {
  const where = connection.path ?? `${connection.host}:${connection.port}`;
  try {
    await new Promise<void>((resolve, reject) => {
      const socket = connection.path
        ? createConnection(connection.path)
        : createConnection(connection.port ?? 6379, connection.host ?? '127.0.0.1');
      let reply = '';
      let settled = false;
      const done = (err?: Error): void => {
        if (settled) return;
        settled = true;
        socket.destroy();
        if (err) reject(err);
        else resolve();
      };
      socket.setTimeout(timeoutMs, () => done(new Error('timed out')));
      socket.once('error', done);
      // Something that is not Redis may hang up without a word: without this the promise
      // would never settle and Node would exit (code 13) without saying anything.
      socket.once('close', () => done(new ClosedWithoutPong()));
      socket.on('data', (chunk) => {
        reply += chunk.toString('latin1');
        if (reply.includes('+PONG\r\n')) done();
        else if (/^-.*\r\n/m.test(reply)) done(new Error(reply.trim()));
      });
      socket.once('connect', () => {
        const auth = connection.password
          ? `AUTH ${connection.username ? connection.username + ' ' : ''}${connection.password}\r\n`
          : '';
        socket.write(`${auth}PING\r\n`);
      });
    });
  } catch (err) {
    if (err instanceof ClosedWithoutPong) {
      throw new KithError(
        'ERR_REDIS_UNREACHABLE',
        `Redis at ${where} closed the connection without answering PING: is it a Redis server?`,
        'check the host and port in redis.url (KITH_REDIS_URL), or leave it empty so Kith starts its own',
      );
    }
    throw new KithError(
      'ERR_REDIS_UNREACHABLE',
      `Redis at ${where} does not answer: ${(err as Error).message}`,
      'start Redis there, fix redis.url (KITH_REDIS_URL), or leave it empty so Kith starts its own',
    );
  }
}

class ClosedWithoutPong extends Error {}

/**
 * A private redis-server owned by this node: lives in <dataDir>/redis, append-only file on
 * (appendfsync everysec: a queue job lost in the last second is re-created from SQLite),
 * reachable through a unix socket (or a loopback port with a random password when the socket
 * path would be too long).
 */
export class PrivateRedis {
  private child?: ChildProcess;
  connection?: RedisConnection;

  constructor(private readonly options: { dir: string; binary: string; log: Logger }) {}

  async start(): Promise<RedisConnection> {
    const socket = join(this.options.dir, 'redis.sock');
    const args = [
      '--dir',
      this.options.dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--save',
      '',
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
      '--logfile',
      join(this.options.dir, 'redis.log'),
    ];
    // Linux limits unix socket paths to 107 bytes.
    if (Buffer.byteLength(socket) < 100) {
      args.push('--port', '0', '--unixsocket', socket, '--unixsocketperm', '700');
      this.connection = { path: socket };
    } else {
      const port = await freeLoopbackPort();
      const password = randomBytes(24).toString('hex');
      args.push('--port', String(port), '--bind', '127.0.0.1', '--requirepass', password);
      this.connection = { host: '127.0.0.1', port, password };
    }
    const child = spawn(this.options.binary, args, { stdio: 'ignore' });
    this.child = child;
    const spawnError = new Promise<never>((_, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          err.code === 'ENOENT'
            ? new KithError(
                'ERR_REDIS_MISSING',
                `${this.options.binary} is not installed`,
                'install it (apt-get install redis-server) or set redis.url (KITH_REDIS_URL) to an existing Redis',
              )
            : err,
        );
      });
      child.once('exit', (code) =>
        reject(
          new KithError(
            'ERR_REDIS_EXITED',
            `redis-server exited at start (code ${code}); see ${this.options.dir}/redis.log`,
          ),
        ),
      );
    });
    let failed = false;
    spawnError.catch(() => (failed = true));
    await Promise.race([spawnError, this.waitReady(() => failed)]);
    this.options.log.debug(
      { redis: this.connection.path ?? this.connection.port },
      'private redis-server ready',
    );
    return this.connection;
  }

  private async waitReady(failed: () => boolean): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (!failed()) {
      try {
        await pingRedis(this.connection!, 500);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** SIGTERM: redis flushes the append-only file and exits. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
    this.child = undefined;
  }

  /** The process id, for tests that kill Redis to prove nothing is lost. */
  get pid(): number | undefined {
    return this.child?.pid;
  }
}

export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

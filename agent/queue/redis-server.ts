import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join, resolve } from 'node:path';
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
 *
 * It must not outlive the node: two redis-servers on one append-only directory corrupt it. So
 * it is spawned through `setpriv --pdeathsig TERM` where that exists (it gets SIGTERM when the
 * node dies, even of SIGKILL), and it writes `redis.pid`; a start finds a redis-server left
 * behind by a dead node there and stops it first (the node holds node.lock, so no live node
 * owns it).
 */
export class PrivateRedis {
  private child?: ChildProcess;
  connection?: RedisConnection;

  constructor(
    private readonly options: {
      dir: string;
      binary: string;
      log: Logger;
      /** Start the server again when it dies while the node runs (a node's own Redis; tests that kill it by hand leave it off). */
      restart?: boolean;
    },
  ) {}

  async start(): Promise<RedisConnection> {
    this.stopping = false;
    const dir = resolve(this.options.dir);
    const socket = join(dir, 'redis.sock');
    await stopStaleRedis(dir, this.options.log);
    const args = [
      '--dir',
      dir,
      '--pidfile',
      join(dir, 'redis.pid'),
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
      join(dir, 'redis.log'),
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
    this.args = args;
    await this.spawnServer();
    this.options.log.debug(
      { redis: this.connection.path ?? this.connection.port },
      'private redis-server ready',
    );
    return this.connection;
  }

  /** Arguments of the running server, kept for a restart on the same directory, socket and port. */
  private args: string[] = [];
  private stopping = false;
  private restarts = 0;

  /** Spawns redis-server and resolves once it answers PING; watches it from then on. */
  private async spawnServer(): Promise<void> {
    const dir = resolve(this.options.dir);
    const setpriv = SETPRIV.find(isExecutable);
    const child = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'TERM', '--', this.options.binary, ...this.args], { stdio: 'ignore' })
      : spawn(this.options.binary, this.args, { stdio: 'ignore' });
    this.child = child;
    const missing = new KithError(
      'ERR_REDIS_MISSING',
      `${this.options.binary} is not installed`,
      'install it (apt-get install redis-server) or set redis.url (KITH_REDIS_URL) to an existing Redis',
    );
    const spawnError = new Promise<never>((_, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? missing : err));
      child.once('exit', (code) =>
        reject(
          // 127: setpriv could not find the binary.
          setpriv && code === 127
            ? missing
            : new KithError(
                'ERR_REDIS_EXITED',
                `redis-server exited at start (code ${code}); see ${join(dir, 'redis.log')}`,
              ),
        ),
      );
    });
    let failed = false;
    spawnError.catch(() => (failed = true));
    await Promise.race([spawnError, this.waitReady(() => failed)]);
    child.once('exit', (code, signal) => this.onExit(child, code, signal));
  }

  /**
   * The server died while the node runs (killed, OOM): start it again on the same directory, so
   * the queues come back (their jobs are re-created from SQLite once Redis answers). Why here:
   * nothing else owns this process, and without a restart no retry would ever run again.
   */
  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || this.child !== child || !this.options.restart) return;
    this.child = undefined;
    this.options.log.warn({ code, signal }, 'private redis-server exited: restarting it');
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    const delayMs = Math.min(100 * 2 ** this.restarts, 5_000);
    this.restarts += 1;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      this.spawnServer().then(
        () => {
          this.restarts = 0;
          this.options.log.info('private redis-server restarted');
        },
        (err: Error) => {
          this.options.log.warn({ err: err.message }, 'restarting the private redis-server failed');
          this.child?.kill('SIGKILL');
          this.child = undefined;
          if (!this.stopping) this.scheduleRestart();
        },
      );
    }, delayMs);
  }

  private restartTimer?: ReturnType<typeof setTimeout>;

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
    this.stopping = true;
    clearTimeout(this.restartTimer);
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

/**
 * Stops a redis-server that a dead node left running on this directory. Only a process whose
 * pid is in redis.pid, whose program is redis-server and whose working directory is this one
 * (redis-server changes into --dir) is stopped: a reused pid is left alone.
 */
async function stopStaleRedis(dir: string, log: Logger): Promise<void> {
  const pidFile = join(dir, 'redis.pid');
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  if (Number.isInteger(pid) && pid > 1 && isRedisOf(pid, dir)) {
    log.warn({ pid, dir }, 'stopping a redis-server left behind by a node that is gone');
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (isRedisOf(pid, dir)) {
      if (Date.now() > deadline) {
        process.kill(pid, 'SIGKILL');
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  rmSync(pidFile, { force: true });
}

function isRedisOf(pid: number, dir: string): boolean {
  try {
    const program = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')[0];
    const state = /^State:\s+(\w)/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1];
    return program.includes('redis-server') && state !== 'Z' && readlinkSync(`/proc/${pid}/cwd`) === dir;
  } catch {
    return false;
  }
}

/** util-linux's setpriv, looked for where Debian and others install it. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'];

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
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

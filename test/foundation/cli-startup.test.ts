import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  cleanEnv,
  exited,
  KITH_BIN,
  LOOPBACK_NODE_ENV,
  runKith,
  runKithAsync,
  startKith,
} from '../helpers/cli.ts';
import { until } from '../helpers/until.ts';
import { tempDir } from '../helpers/tmp.ts';
import { HANG_MS } from '../helpers/hang.ts';

// The shared loopback settings without their log level: these tests read what `kith` says at the
// level each asks for (KITH_LOG_LEVEL would win over a config file's, and it is what is tested).
const { KITH_LOG_LEVEL: _level, ...BASE } = LOOPBACK_NODE_ENV;

/** Pids of the redis-servers working in that directory (redis-server changes into --dir). */
function redisServersIn(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const program = readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0')[0];
      if (program.includes('redis-server') && readlinkSync(`/proc/${entry}/cwd`) === dir)
        pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Polls a file-system fact every 10 ms (the shared `until`): these waits follow a process closely. */
const waitFor = (check: () => boolean, what: string) => until(() => check() || undefined, what, HANG_MS, 10);

/**
 * Stops what a failed test left running (a no-op after a passing one): a node left behind made
 * every following test fail with "another Kith node (pid …) is running".
 */
async function stopLeftovers(dataDir: string, redisDir: string, child?: ChildProcess): Promise<void> {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited(child);
  }
  const lock = join(dataDir, 'node.lock');
  const pid = existsSync(lock) ? Number(readFileSync(lock, 'utf8')) : NaN;
  if (Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // not running
    }
  }
  for (const redis of redisServersIn(redisDir)) process.kill(redis, 'SIGKILL');
}

/** One RESP command over a unix socket. */
async function redisCommand(socket: string, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const connection = createConnection(socket);
    let reply = '';
    connection.once('error', reject);
    connection.on('data', (d: Buffer) => {
      reply += d.toString();
      if (reply.endsWith('\r\n')) {
        connection.destroy();
        resolve(reply);
      }
    });
    connection.write(
      `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`,
    );
  });
}

describe('kith start: startup, signals and what is left behind', () => {
  const dir = tempDir();
  const dataDir = join(dir.path, 'node');
  const redisDir = join(dataDir, 'redis');

  beforeAll(() => {
    const init = runKith(
      ['--data-dir', dataDir, 'init', '--name', 'Alice', '--email', 'alice@example.org'],
      BASE,
    );
    expect(init.stderr).toBe('');
    expect(init.status).toBe(0);
  });
  afterAll(() => {
    for (const pid of redisServersIn(redisDir)) process.kill(pid, 'SIGKILL');
    dir.remove();
  });

  it('a Redis URL whose server hangs up without PONG is one line, not a silent exit', async () => {
    const notRedis = createServer((socket) => socket.end('garbage\n'));
    await new Promise<void>((r) => notRedis.listen(0, '127.0.0.1', () => r()));
    const { port } = notRedis.address() as { port: number };
    try {
      const result = await runKithAsync(['--data-dir', dataDir, 'start'], {
        ...BASE,
        KITH_REDIS_URL: `redis://127.0.0.1:${port}`,
      });
      expect(result.status).toBe(1);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(/closed the connection without answering PING: is it a Redis server\?/);
    } finally {
      notRedis.close();
    }
  });

  it('SIGTERM during startup stops the private redis-server and leaves no lock', async () => {
    const child = spawn(process.execPath, [KITH_BIN, '--data-dir', dataDir, '--log-level', 'warn', 'start'], {
      env: { ...cleanEnv(), ...BASE },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      // redis.pid appears once redis-server runs: the node is still starting its other parts.
      await waitFor(() => existsSync(join(redisDir, 'redis.pid')), 'redis.pid');
      child.kill('SIGTERM');
      expect(await exited(child)).toBe(0);
      expect(stderr).toBe('');
      expect(redisServersIn(redisDir)).toEqual([]);
      expect(existsSync(join(dataDir, 'node.lock'))).toBe(false);
      expect(existsSync(join(dataDir, 'control.sock'))).toBe(false);
    } finally {
      await stopLeftovers(dataDir, redisDir, child);
    }
  });

  it('`kith start | head -2` does not crash on EPIPE; SIGTERM still stops everything', async () => {
    const shell = spawn(
      'sh',
      ['-c', `"${process.execPath}" "${KITH_BIN}" --data-dir "${dataDir}" start | head -2`],
      {
        env: { ...cleanEnv(), ...BASE },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    shell.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await waitFor(() => existsSync(join(dataDir, 'control.sock')), 'the control socket');
      const pid = Number(readFileSync(join(dataDir, 'node.lock'), 'utf8'));
      await new Promise((r) => setTimeout(r, 500));
      process.kill(pid, 'SIGTERM');
      await exited(shell);
      await waitFor(() => !existsSync(join(dataDir, 'node.lock')), 'node.lock to go');
      expect(stderr).not.toMatch(/EPIPE/);
      expect(redisServersIn(redisDir)).toEqual([]);
      expect(existsSync(join(dataDir, 'control.sock'))).toBe(false);
    } finally {
      await stopLeftovers(dataDir, redisDir, shell);
    }
  });

  it('after the node is killed with SIGKILL, the next start runs one redis-server, data intact, no half literal left', async () => {
    const first = await startKith(
      ['--data-dir', dataDir, '--log-level', 'warn', 'start'],
      BASE,
      /Stop with Ctrl-C/,
    );
    const socket = join(redisDir, 'redis.sock');
    try {
      expect(await redisCommand(socket, 'SET', 'probe', 'kept')).toBe('+OK\r\n');
    } finally {
      first.child.kill('SIGKILL');
      await exited(first.child);
    }
    // What an IMAP APPEND being received leaves when the node dies: its literal, in the data
    // directory's spool/ (never the OS temp dir).
    const halfLiteral = join(dataDir, 'spool', 'lit-00112233aabbccdd');
    writeFileSync(halfLiteral, 'half of a mail');
    const second = await startKith(
      ['--data-dir', dataDir, '--log-level', 'warn', 'start'],
      BASE,
      /Stop with Ctrl-C/,
    );
    try {
      expect(redisServersIn(redisDir)).toHaveLength(1);
      expect(await redisCommand(socket, 'GET', 'probe')).toBe('$4\r\nkept\r\n');
      expect(existsSync(halfLiteral)).toBe(false);
      expect(runKith(['--data-dir', dataDir, 'id', '--json']).stdout).toContain('alice@example.org');
    } finally {
      second.child.kill('SIGTERM');
      expect(await exited(second.child)).toBe(0);
    }
    expect(redisServersIn(redisDir)).toEqual([]);
  });

  it('a damaged tls/key.pem stops `kith start` with one line naming the file', () => {
    const keyFile = join(dataDir, 'tls', 'key.pem');
    const good = readFileSync(keyFile);
    writeFileSync(keyFile, 'not a key\n');
    try {
      const result = runKith(['--data-dir', dataDir, 'start'], BASE);
      expect(result.status).toBe(1);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain(`kith: ${keyFile} is not a PEM private key`);
      expect(redisServersIn(redisDir)).toEqual([]);
    } finally {
      writeFileSync(keyFile, good);
    }
  });

  it.each([
    [
      'p2p',
      (port: number) => ({ KITH_P2P_LISTEN: `["/ip4/127.0.0.1/tcp/${port}"]` }),
      /p2p\.listen \(KITH_P2P_LISTEN\)/,
    ],
    ['smtp', (port: number) => ({ KITH_SMTP_PORT: String(port) }), /smtp\.port \(KITH_SMTP_PORT\)/],
    ['http', (port: number) => ({ KITH_HTTP_PORT: String(port) }), /http\.port \(KITH_HTTP_PORT\)/],
  ])(
    'the %s port in use stops `kith start` with one line naming the key and variable',
    async (what, env, key) => {
      const busy = createServer();
      await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
      const { port } = busy.address() as { port: number };
      try {
        const result = runKith(['--data-dir', dataDir, '--log-level', 'warn', 'start'], {
          ...BASE,
          ...env(port),
        });
        expect(result.status).toBe(1);
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
        expect(result.stderr).toMatch(
          new RegExp(`^kith: ${what} port ${port} on 127\\.0\\.0\\.1 is already in use — `),
        );
        expect(result.stderr).toMatch(key);
        expect(redisServersIn(redisDir)).toEqual([]);
      } finally {
        busy.close();
      }
    },
  );

  it('first-run `kith start` on a terminal asks the passphrase once, with its confirmation', () => {
    const fresh = join(dir.path, 'tty');
    // A pseudo-terminal: python3 answers each prompt and stops the node once it runs.
    const script = `
import os, pty, select, signal, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b''; answered = 0; deadline = time.time() + 60
while time.time() < deadline and b'Stop with Ctrl-C' not in out:
    if select.select([fd], [], [], 0.2)[0]:
        try: out += os.read(fd, 4096)
        except OSError: break
    while answered < out.count(b'assphrase'):
        answered += 1; time.sleep(0.1); os.write(fd, b'a long enough passphrase\\r')
os.kill(pid, signal.SIGTERM)
while True:
    try: chunk = os.read(fd, 4096)
    except OSError: break
    if not chunk: break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
sys.exit(os.waitstatus_to_exitcode(status))
`;
    const result = spawnSync(
      'python3',
      [
        '-c',
        script,
        process.execPath,
        KITH_BIN,
        '--data-dir',
        fresh,
        '--log-level',
        'warn',
        'start',
        '--email',
        'tty@example.org',
      ],
      { env: { ...cleanEnv(), ...BASE, KITH_PASSPHRASE: '' }, encoding: 'utf8', timeout: 90_000 },
    );
    expect(result.stdout).toContain('Kith node stopped.');
    expect(result.stdout.match(/Passphrase for the Kith keys/g)).toHaveLength(1);
    expect(result.stdout.match(/Repeat the passphrase/g)).toHaveLength(1);
    expect(result.status).toBe(0);
  });

  it('a failed init leaves the data directory as it was', () => {
    const fresh = join(dir.path, 'fresh');
    const badEmail = runKith(['--data-dir', fresh, 'init', '--email', 'not-an-address'], BASE);
    expect(badEmail.status).toBe(1);
    expect(badEmail.stderr).toMatch(/^kith: not an e-mail address: not-an-address — /);
    expect(existsSync(fresh)).toBe(false);
    const empty = join(dir.path, 'empty');
    mkdirSync(empty, { mode: 0o700 });
    writeFileSync(join(empty, 'config.yaml'), 'logLevel: warn\n');
    const weak = runKith(['--data-dir', empty, 'init', '--email', 'a@example.org'], {
      ...BASE,
      KITH_PASSPHRASE: 'short',
    });
    expect(weak.status).toBe(1);
    expect(weak.stderr).toMatch(/^kith: the passphrase is shorter than 8 characters/);
    expect(readdirSync(empty)).toEqual(['config.yaml']);
  });

  it('init without --email and without a terminal asks for --email instead of inventing an address', () => {
    const fresh = join(dir.path, 'no-email');
    const result = runKith(['--data-dir', fresh, 'init'], BASE);
    expect(result.status).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^kith: no e-mail address .* — give --email you@example\.org/);
    expect(existsSync(fresh)).toBe(false);
  });

  it('bound to 0.0.0.0 (the Docker image), the settings and the autoconfig XML name 127.0.0.1', async () => {
    const wildcard = { KITH_SMTP_HOST: '0.0.0.0', KITH_IMAP_HOST: '0.0.0.0', KITH_HTTP_HOST: '0.0.0.0' };
    const node = await startKith(
      ['--data-dir', dataDir, '--log-level', 'warn', 'start'],
      { ...BASE, ...wildcard },
      /Stop with Ctrl-C/,
    );
    try {
      expect(node.stdout()).not.toContain('0.0.0.0');
      expect(node.stdout()).toMatch(/IMAP {10}127\.0\.0\.1 port \d+/);
      expect(node.stdout()).toMatch(/SMTP {10}127\.0\.0\.1 port \d+/);
      const url = /autoconfig +(http:\/\/127\.0\.0\.1:\d+\S+)/.exec(node.stdout())![1];
      const xml = await (await fetch(url)).text();
      expect(xml.match(/<hostname>127\.0\.0\.1<\/hostname>/g)).toHaveLength(2);
      expect(xml).not.toContain('0.0.0.0');
      const settings = runKith(['--data-dir', dataDir, 'mail-settings', '--json']).stdout;
      expect(settings).toContain('127.0.0.1');
      expect(settings).not.toContain('0.0.0.0');
    } finally {
      node.child.kill('SIGTERM');
      expect(await exited(node.child)).toBe(0);
    }
  });

  it('publicHost (KITH_PUBLIC_HOST) is the host the settings and the autoconfig XML give', async () => {
    const node = await startKith(
      ['--data-dir', dataDir, '--log-level', 'warn', 'start'],
      { ...BASE, KITH_HTTP_HOST: '0.0.0.0', KITH_PUBLIC_HOST: 'localhost' },
      /Stop with Ctrl-C/,
    );
    try {
      expect(node.stdout()).toMatch(/IMAP {10}localhost port \d+/);
      const url = /autoconfig +(http:\/\/localhost:\d+\S+)/.exec(node.stdout())![1];
      const xml = await (await fetch(url)).text();
      expect(xml.match(/<hostname>localhost<\/hostname>/g)).toHaveLength(2);
    } finally {
      node.child.kill('SIGTERM');
      expect(await exited(node.child)).toBe(0);
    }
  });

  it('ps shows no redis-server for the data directory once all is done', () => {
    expect(execFileSync('ps', ['-eo', 'args']).toString()).not.toContain(join(redisDir, 'redis.sock'));
  });
});

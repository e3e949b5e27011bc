import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { KITH_BIN, exited, runKith } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

interface Contact {
  email: string;
  trusted: boolean;
}

describe('kith demo with its defaults', () => {
  const dir = tempDir('kith-demo-test-');
  // The demo's own temporary directory goes under TMPDIR: here, so the test can see it.
  const tmp = join(dir.path, 'tmp');
  mkdirSync(tmp);
  afterAll(() => dir.remove());

  it('runs alice, carol and bob (alice and bob not trusting each other) and removes its directory on exit', async () => {
    const demo = spawn(process.execPath, [KITH_BIN, 'demo', '--json'], {
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    demo.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    demo.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      // no timer of its own: Jest's timeout is the hang detector (the demo took over 60 s to start
      // beside a clean-clone CI run and six helpers, load ~27)
      await new Promise<void>((resolve, reject) => {
        demo.stdout.on('data', () => stdout.includes('\n') && resolve());
        demo.once('exit', (code) => reject(new Error(`demo exited ${code}: ${stderr}`)));
      });
      const { agents } = JSON.parse(stdout.split('\n')[0]) as { agents: { name: string; dataDir: string }[] };
      expect(agents.map((a) => a.name)).toEqual(['alice', 'carol', 'bob']);
      const contactsOf = (name: string): Contact[] =>
        JSON.parse(
          runKith(['--data-dir', agents.find((a) => a.name === name)!.dataDir, 'contacts', '--json']).stdout,
        ) as Contact[];
      const alice = contactsOf('alice');
      expect(alice.find((c) => c.email === 'carol@demo.kith')?.trusted).toBe(true);
      expect(alice.find((c) => c.email === 'bob@demo.kith')?.trusted).toBe(false);
      expect(contactsOf('bob').find((c) => c.email === 'alice@demo.kith')?.trusted).toBe(false);
      const made = dirname(agents[0].dataDir);
      expect(dirname(made)).toBe(tmp);
      demo.kill('SIGTERM');
      expect(await exited(demo)).toBe(0);
      expect(existsSync(made)).toBe(false);
      expect(execFileSync('ps', ['-eo', 'args']).toString()).not.toContain(made);
      expect(stdout.split('\n')).toHaveLength(2);
    } finally {
      if (demo.exitCode === null) demo.kill('SIGKILL');
    }
  });

  it('SIGTERM while the demo starts stops what started: no redis-server, no directory left', async () => {
    const own = join(dir.path, 'tmp-early');
    mkdirSync(own);
    const demo = spawn(process.execPath, [KITH_BIN, 'demo', '--json'], {
      env: { ...process.env, TMPDIR: own },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const pidFile = (): string | undefined => {
        const made = readdirSync(own).find((name) => name.startsWith('kith-demo-'));
        return made && join(own, made, 'redis', 'redis.pid');
      };
      const redisPid = (): number => {
        const file = pidFile();
        return file && existsSync(file) ? Number(readFileSync(file, 'utf8')) : 0;
      };
      // Only polling sees the file appear; no deadline of its own (Jest's timeout is the hang
      // detector: at load ~27 redis started more than 30 s after the demo).
      while (!(redisPid() > 0)) await new Promise((r) => setTimeout(r, 10));
      const pid = redisPid();
      demo.kill('SIGTERM');
      expect(await exited(demo)).toBe(0);
      expect(readdirSync(own).filter((name) => name.startsWith('kith-demo-'))).toEqual([]);
      expect(() => process.kill(pid, 0)).toThrow();
    } finally {
      if (demo.exitCode === null) demo.kill('SIGKILL');
    }
  });

  /** A TMPDIR of the test's own: a demo killed by an earlier failure leaves its directory in `tmp`. */
  const ownTmp = (name: string): string => {
    const path = join(dir.path, name);
    mkdirSync(path);
    return path;
  };

  it('--agents 2 is refused before any directory is made', () => {
    const tmp = ownTmp('tmp-agents');
    const result = runKith(['demo', '--agents', '2'], { TMPDIR: tmp });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/--agents takes a whole number: the demo runs 3 to 10 agents/);
    expect(readdirSync(tmp).filter((name) => name.startsWith('kith-demo-'))).toEqual([]);
  });

  it('--set without KEY=VALUE is refused before any directory is made, saying how to write it', () => {
    const tmp = ownTmp('tmp-set');
    const result = runKith(['demo', '--set', 'spam.forwardFloorPerHour'], { TMPDIR: tmp });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^kith: not a setting: "spam.forwardFloorPerHour" — write it as KEY=VALUE/);
    expect(readdirSync(tmp).filter((name) => name.startsWith('kith-demo-'))).toEqual([]);
  });

  it('--dir holding an earlier run is refused naming --dir', () => {
    const earlier = join(dir.path, 'earlier');
    mkdirSync(join(earlier, 'alice'), { recursive: true });
    const result = runKith(['demo', '--dir', earlier]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      /^kith: .* holds an earlier demo run \(alice\) — give --dir a new or empty directory/,
    );
    expect(result.stderr).not.toContain('--data-dir');
    expect(readdirSync(earlier)).toEqual(['alice']);
  });
});

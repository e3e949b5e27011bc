import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { exited, runKith, startKith } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

const PASS = { KITH_PASSPHRASE: 'a long enough passphrase', KITH_P2P_LISTEN: '["/ip4/127.0.0.1/tcp/0"]' };

describe('kith command line', () => {
  const dir = tempDir();
  const dataDir = join(dir.path, 'node');
  let fingerprint = '';

  beforeAll(() => {
    const init = runKith(
      ['--data-dir', dataDir, 'init', '--name', 'Alice', '--email', 'alice@example.org'],
      PASS,
    );
    expect(init.stderr).toBe('');
    expect(init.status).toBe(0);
    fingerprint = /fingerprint\s+([0-9A-F]{40})/.exec(init.stdout)![1];
  });
  afterAll(() => dir.remove());

  it('every command and subcommand has --help', () => {
    // The list comes from kith's own help, so a new command cannot be left out of this test.
    const commandsOf = (path: string[]): string[] => {
      const help = runKith([...path, '--help']);
      expect(help.status).toBe(0);
      expect(help.stdout).toMatch(/Usage: kith/);
      const section = help.stdout.split(/^Commands:$/m)[1] ?? '';
      return [...section.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    };
    const top = commandsOf([]);
    expect(top).toEqual(
      expect.arrayContaining(['init', 'id', 'export-key', 'start', 'demo', 'invite', 'accept', 'trust']),
    );
    expect(top).toEqual(expect.arrayContaining(['revoke', 'contacts', 'agent', 'send', 'outbox', 'track']));
    expect(top).toEqual(expect.arrayContaining(['mail-settings', 'status', 'stop']));
    const subcommands = new Map<string, string[]>();
    for (const command of top) {
      subcommands.set(command, commandsOf([command]));
      for (const sub of subcommands.get(command)!) commandsOf([command, sub]);
    }
    expect(subcommands.get('agent')).toEqual([
      'add',
      'import',
      'history',
      'forget-entity-key',
      'list',
      'revoke',
    ]);
  });

  it('`kith agent forget-entity-key` removes the entity private key only with --yes; the identity stays', () => {
    const other = join(dir.path, 'forget');
    const args = ['--data-dir', other];
    expect(runKith([...args, 'init', '--name', 'Al', '--email', 'al@example.org'], PASS).status).toBe(0);
    expect(runKith([...args, 'agent', 'forget-entity-key']).stdout).toMatch(
      /^This device holds the entity key/,
    );
    expect(runKith([...args, 'agent', 'forget-entity-key', '--yes']).stdout).toMatch(
      /^Removed the entity key/,
    );
    expect(runKith([...args, 'agent', 'forget-entity-key']).stdout).toMatch(/^This device does not hold/);
    expect(runKith([...args, 'id', '--json']).status).toBe(0);
  });

  it('`kith id` shows the identity without the passphrase', () => {
    const result = runKith(['--data-dir', dataDir, 'id', '--json']);
    expect(result.status).toBe(0);
    const id = JSON.parse(result.stdout) as { fingerprint: string; email: string; agentId: string };
    expect(id.fingerprint).toBe(fingerprint);
    expect(id.email).toBe('alice@example.org');
    expect(id.agentId).toMatch(/^12D3KooW/);
  });

  it('`kith export-key` prints a key GnuPG imports, and the certificate gpg verifies', () => {
    const cert = join(dir.path, 'agent-cert.json');
    const result = runKith(['--data-dir', dataDir, 'export-key', '--certificate', cert]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    const home = join(dir.path, 'gnupg');
    mkdirSync(home, { mode: 0o700 });
    const env = { ...process.env, GNUPGHOME: home };
    execFileSync('gpg', ['--batch', '--import'], {
      input: result.stdout,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const status = execFileSync('gpg', ['--batch', '--status-fd', '1', '--verify', cert + '.asc', cert], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString();
    expect(status).toContain(`VALIDSIG ${fingerprint}`);
  });

  it('`kith start` runs until SIGTERM and then stops cleanly, Redis included', async () => {
    const node = await startKith(
      ['--data-dir', dataDir, '--log-level', 'warn', 'start'],
      PASS,
      /Stop with Ctrl-C/,
    );
    const socket = join(dataDir, 'redis', 'redis.sock');
    expect(existsSync(socket)).toBe(true);
    expect(existsSync(join(dataDir, 'node.lock'))).toBe(true);
    const second = runKith(['--data-dir', dataDir, 'start'], PASS);
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(/another Kith node .* is running/);
    node.child.kill('SIGTERM');
    expect(await exited(node.child)).toBe(0);
    expect(node.stdout()).toContain('Kith node stopped.');
    expect(existsSync(join(dataDir, 'node.lock'))).toBe(false);
    const leftover = execFileSync('ps', ['-eo', 'args']).toString();
    expect(leftover).not.toContain(socket);
  });

  it('a wrong passphrase gives one clear line and exit 1, and nothing is damaged', () => {
    const result = runKith(['--data-dir', dataDir, 'start'], { KITH_PASSPHRASE: 'wrong passphrase!' });
    expect(result.status).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^kith: wrong passphrase — /);
    expect(runKith(['--data-dir', dataDir, 'id']).stdout).toContain(fingerprint.slice(0, 4));
  });

  it('without a terminal and without KITH_PASSPHRASE, it says what to set', () => {
    const result = runKith(['--data-dir', dataDir, 'start']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/set KITH_PASSPHRASE/);
  });

  it('an invalid config value names the key', () => {
    const result = runKith(['--data-dir', dataDir, 'start'], { ...PASS, KITH_SMTP_PORT: 'twenty-five' });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^kith: invalid configuration: smtp\.port/);
  });

  it('an unreachable Redis URL is one clear line', () => {
    const result = runKith(['--data-dir', dataDir, 'start'], {
      ...PASS,
      KITH_REDIS_URL: 'redis://127.0.0.1:1',
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^kith: Redis at 127\.0\.0\.1:1 does not answer/);
  });

  it('a data directory owned by someone else is refused untouched', () => {
    const foreign = join(dir.path, 'foreign');
    mkdirSync(foreign, { mode: 0o700 });
    chownSync(foreign, 65534, 65534);
    const result = runKith(['--data-dir', foreign, 'init', '--email', 'x@example.org'], PASS);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/belongs to user 65534/);
    expect(existsSync(join(foreign, 'kith.db'))).toBe(false);
  });

  it('a corrupt database is reported, not overwritten', () => {
    const broken = join(dir.path, 'broken');
    mkdirSync(broken, { mode: 0o700 });
    execFileSync('sh', ['-c', `head -c 4096 /dev/urandom > ${join(broken, 'kith.db')}`]);
    const before = readFileSync(join(broken, 'kith.db'));
    const result = runKith(['--data-dir', broken, 'id']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^kith: cannot open the database|file is not a database/);
    expect(readFileSync(join(broken, 'kith.db')).equals(before)).toBe(true);
  });
});

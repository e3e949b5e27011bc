import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as openpgp from 'openpgp';
import { exited, LOOPBACK_NODE_ENV, runKith, startKith } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

// A real node as a child process, driven only through `kith list …`; then restarted. Each `kith`
// run is a new Node process (about 10 s each on the loaded 2-core machine), hence the long limits.
const ENV = LOOPBACK_NODE_ENV;

describe('kith list … against a running node', () => {
  const dir = tempDir();
  const data = join(dir.path, 'home');
  let node: Awaited<ReturnType<typeof startKith>> | undefined;
  const kith = (...args: string[]) => runKith(['--data-dir', data, ...args], ENV);
  const start = () =>
    startKith(['--data-dir', data, 'start', '--email', 'home@example.org'], ENV, /Stop with Ctrl-C/);
  let memberKey: string;
  let memberFpr: string;

  beforeAll(async () => {
    node = await start();
    const { publicKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: 'Mia', email: 'mia@example.net' }],
      format: 'armored',
    });
    memberKey = join(dir.path, 'mia.asc');
    writeFileSync(memberKey, publicKey);
    memberFpr = (await openpgp.readKey({ armoredKey: publicKey })).getFingerprint().toUpperCase();
  });

  afterAll(async () => {
    if (node) {
      node.child.kill('SIGTERM');
      await exited(node.child);
    }
    dir.remove();
  });

  it('creates a list with its own entity; bad names, duplicates and policies get one clear line', () => {
    const created = kith('list', 'create', 'dev', '--email', 'dev@example.org');
    expect(created.stderr).toBe('');
    expect(created.stdout).toMatch(/^dev <dev@example\.org>$/m);
    expect(created.stdout).toMatch(/fingerprint {2}[0-9A-F]{40}/);
    expect(created.stdout).toMatch(/posting {6}members, posts up to 10485760 bytes/);
    const again = kith('list', 'create', 'dev', '--email', 'dev@example.org');
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/a list named dev exists already/);
    expect(kith('list', 'create', 'Bad_Name', '--email', 'x@example.org').stderr).toMatch(/not a list name/);
    expect(kith('list', 'create', 'x', '--email', 'not-an-address').stderr).toMatch(/not an e-mail address/);
    expect(kith('list', 'create', 'y', '--email', 'y@example.org', '--policy', 'anarchy').stderr).toMatch(
      /not a posting policy: anarchy/,
    );
    expect(kith('list', 'show', 'dev', '--key').stdout).toMatch(/-----BEGIN PGP PUBLIC KEY BLOCK-----/);
  }, 300_000);

  it('members, moderators, policy and track', () => {
    expect(kith('list', 'add', 'dev', 'nobody@example.org').stderr).toMatch(
      /holds no key for nobody@example\.org/,
    );
    const added = kith('list', 'add', 'dev', memberFpr, '--key', memberKey);
    expect(added.stderr).toBe('');
    expect(added.stdout).toMatch(new RegExp(`Added mia@example\\.net \\(${memberFpr}\\) to dev`));
    expect(kith('list', 'moderators', 'dev', '--add', 'mia@example.net').stdout).toMatch(/mia@example\.net/);
    expect(kith('list', 'members', 'dev').stdout).toMatch(
      new RegExp(`${memberFpr} {2}mia@example\\.net {2}\\(moderator\\)`),
    );
    expect(kith('list', 'policy', 'dev', 'moderated', '--max-bytes', '5000').stdout).toMatch(
      /dev <dev@example\.org>: posting moderated, posts up to 5000 bytes/,
    );
    expect(kith('list', 'policy', 'dev', '--max-bytes', '-3').stderr).toMatch(/not a size in bytes/);
    expect(kith('list', 'track', 'dev').status).toBe(0);
    expect(kith('invite', '--list', 'dev', '--ttl', '5').stdout).toMatch(/^kith1/);
    expect(kith('list', 'remove', 'dev', 'mia@example.net').stdout).toMatch(/Removed [0-9A-F]{40} from dev/);
    expect(kith('list', 'members', 'dev').stdout.trim()).toBe('');
    expect(kith('list', 'members', 'nosuch').stderr).toMatch(/hosts no list named nosuch/);
  }, 300_000);

  it('`kith bridge add` makes an outside list a list entity (password from a file); bad settings get one clear line', () => {
    const pass = join(dir.path, 'imap.pass');
    writeFileSync(pass, 'pw-cli-7Hq2\n');
    const common = ['--list', 'dev@outside.test', '--address', 'kith@outside.test', '--imap-user', 'kith'];
    const bad = kith(
      'bridge',
      'add',
      'ext',
      '--email',
      'ext@example.org',
      ...common,
      '--imap',
      'nohost',
      '--imap-pass-file',
      pass,
      '--smtp',
      '127.0.0.1:1',
    );
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--imap: not host:port: nohost/);
    // Nothing listens on port 1: the bridge keeps trying in the background; the list exists at once.
    const added = kith(
      'bridge',
      'add',
      'ext',
      '--email',
      'ext@example.org',
      ...common,
      '--imap',
      '127.0.0.1:1',
      '--imap-pass-file',
      pass,
      '--smtp',
      '127.0.0.1:1',
      '--smtp-tls',
      'none',
    );
    expect(added.stderr).toBe('');
    expect(added.stdout).toMatch(
      /^ext <ext@example\.org> bridges dev@outside\.test, read as kith@outside\.test\.$/m,
    );
    const shown = JSON.parse(kith('bridge', 'show', 'ext', '--json').stdout) as Record<string, unknown>;
    expect(shown).toMatchObject({
      listAddress: 'dev@outside.test',
      imap: 'kith@127.0.0.1:1/INBOX (starttls)',
    });
    expect(JSON.stringify(shown)).not.toContain('pw-cli-7Hq2');
    // Sealed under the passphrase in the list's SQLite file, never there in plain text.
    expect(readFileSync(join(data, 'lists', 'ext', 'kith.db')).includes(Buffer.from('pw-cli-7Hq2'))).toBe(
      false,
    );
  }, 300_000);

  it('after a restart the node starts its list again, settings kept', async () => {
    node!.child.kill('SIGTERM');
    expect(await exited(node!.child)).toBe(0);
    node = await start();
    const shown = kith('list', 'show', '--json');
    const lists = JSON.parse(shown.stdout) as { name: string; policy: string; maxBytes: number }[];
    expect(lists).toMatchObject([{ name: 'dev', policy: 'moderated', maxBytes: 5000 }, { name: 'ext' }]);
    const bridges = JSON.parse(kith('bridge', 'show', '--json').stdout) as { name: string }[];
    expect(bridges.map((b) => b.name)).toEqual(['ext']);
    // `kith bridge remove`: the bridge ends (its sealed passwords opened after the restart), the list stays.
    const removed = kith('bridge', 'remove', 'ext');
    expect(removed.stderr).toBe('');
    expect(removed.stdout).toMatch(/^ext no longer bridges an outside list; it stays a Kith list/m);
    expect(JSON.parse(kith('bridge', 'show', '--json').stdout)).toEqual([]);
    expect(kith('bridge', 'remove', 'ext').stderr).toMatch(/ext is not a bridged list/);
  });
});

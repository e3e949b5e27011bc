import { createServer, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { exited, LOOPBACK_NODE_ENV, runKith, startKith } from '../helpers/cli.ts';
import { until } from '../helpers/until.ts';
import { tempDir } from '../helpers/tmp.ts';

// Two real nodes as child processes, driven only through the `kith` command line.
const BASE = LOOPBACK_NODE_ENV;

describe('kith invite / accept / contacts / send / track between two nodes', () => {
  const dir = tempDir();
  const alice = join(dir.path, 'alice');
  const bob = join(dir.path, 'bob');
  let nodes: Awaited<ReturnType<typeof startKith>>[] = [];

  beforeAll(async () => {
    nodes = await Promise.all([
      startKith(['--data-dir', alice, 'start', '--email', 'alice@example.org'], BASE, /Stop with Ctrl-C/),
      startKith(['--data-dir', bob, 'start', '--email', 'bob@example.org'], BASE, /Stop with Ctrl-C/),
    ]);
  });

  /** Alice's agents as bob's `kith contacts` shows them. */
  const bobsViewOfAlice = (): { agentId: string; linked: boolean; revoked: boolean }[] => {
    const contacts = JSON.parse(runKith(['--data-dir', bob, 'contacts', '--json']).stdout || '[]') as {
      email: string;
      agents: { agentId: string; linked: boolean; revoked: boolean }[];
    }[];
    return contacts.find((c) => c.email === 'alice@example.org')?.agents ?? [];
  };

  afterAll(async () => {
    for (const node of nodes) {
      node.child.kill('SIGTERM');
      expect(await exited(node.child)).toBe(0);
    }
    dir.remove();
  });

  it('prints the mail settings of the running node', () => {
    const settings = runKith(['--data-dir', alice, 'mail-settings', '--json']);
    expect(settings.status).toBe(0);
    const parsed = JSON.parse(settings.stdout) as { email: string; smtp: { host: string; port: number } };
    expect(parsed.email).toBe('alice@example.org');
    expect(parsed.smtp.host).toBe('127.0.0.1');
    expect(parsed.smtp.port).toBeGreaterThan(0);
    expect(runKith(['--data-dir', alice, 'mail-settings']).stdout).toMatch(
      /autoconfig\s+http:\/\/127\.0\.0\.1:\d+\//,
    );
  });

  it('an invitation links the two nodes, each sees the other as a contact', () => {
    const code = runKith(['--data-dir', alice, 'invite', '--ttl', '5']).stdout.trim();
    expect(code).toMatch(/^kith1/);
    const accepted = runKith(['--data-dir', bob, 'accept', code]);
    expect(accepted.stderr).toBe('');
    expect(accepted.stdout).toMatch(/Now linked with .* <alice@example\.org>/);
    const again = runKith(['--data-dir', bob, 'accept', code]);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/^kith: /);
    const contacts = JSON.parse(runKith(['--data-dir', alice, 'contacts', '--json']).stdout) as {
      email: string;
      trusted: boolean;
      agents: { linked: boolean }[];
    }[];
    const bobView = contacts.find((c) => c.email === 'bob@example.org');
    expect(bobView?.trusted).toBe(true);
    expect(bobView?.agents.some((a) => a.linked)).toBe(true);
  });

  it('`kith send --text` reaches the other node and `kith track` shows it delivered', async () => {
    const sent = runKith(['--data-dir', alice, 'send', 'bob@example.org', '--text', 'hello over kith']);
    expect(sent.stderr).toBe('');
    const id = sent.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    // `kith track` without --once follows the message's events and exits once it is delivered.
    const track = runKith(['--data-dir', alice, 'track', id]);
    expect(track.stderr).toBe('');
    expect(track.stdout).toMatch(/state: delivered/);
    expect(track.stdout).toMatch(/hop 1 reached/);
  });

  it('`kith send --file` delivers a file: saved at the recipient byte for byte', async () => {
    const file = join(dir.path, 'photo.bin');
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(file, bytes);
    const sent = runKith(['--data-dir', alice, 'send', 'bob@example.org', '--file', file, '--wait']);
    expect(sent.stderr).not.toMatch(/kith:/);
    expect(sent.stdout).toMatch(/state: delivered/);
    const id = sent.stdout.trim().split('\n')[0];
    const saved = join(bob, 'received', `${id.slice(0, 8)}-photo.bin`);
    expect(existsSync(saved)).toBe(true);
    expect(readFileSync(saved).equals(bytes)).toBe(true);
  });

  it('a restarted node redials its trusted neighbours by itself', async () => {
    const bobNode = nodes[1];
    bobNode.child.kill('SIGTERM');
    expect(await exited(bobNode.child)).toBe(0);
    nodes[1] = await startKith(['--data-dir', bob, 'start'], BASE, /Stop with Ctrl-C/);
    await until(
      () => (bobsViewOfAlice().some((a) => a.linked) ? true : undefined),
      'bob linked with alice again after his restart',
    );
  });

  it('`kith trust --address` says so when the address does not answer, and keeps it to retry', async () => {
    const closed: Server = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const fingerprint = 'AB'.repeat(20);
    const address = `/ip4/127.0.0.1/tcp/${port}`;
    const result = runKith(['--data-dir', alice, 'trust', fingerprint, '--address', address]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(new RegExp(`^Trusted ${fingerprint}; not reachable yet, will retry:`));
    expect(result.stdout).toContain(`  ${address}  ERR_DIAL_FAILED`);
    const contacts = JSON.parse(runKith(['--data-dir', alice, 'contacts', '--json']).stdout) as {
      fingerprint: string;
      trusted: boolean;
      addressHints: string[];
    }[];
    expect(contacts.find((c) => c.fingerprint === fingerprint)).toMatchObject({
      trusted: true,
      addressHints: [address],
    });
    runKith(['--data-dir', alice, 'revoke', fingerprint]);
  });

  it('`kith agent add` / `import` / `list` / `revoke`: a second device of one entity', async () => {
    const file = join(dir.path, 'laptop.kith-agent');
    const laptop = join(dir.path, 'alice-laptop');
    const added = runKith(['--data-dir', alice, 'agent', 'add', '--out', file], BASE);
    expect(added.stderr).toBe('');
    // No shared private key (docs/protocol.md 7.8): the file carries no entity private key.
    expect(readFileSync(file, 'utf8')).not.toContain('PRIVATE KEY BLOCK');
    const laptopId = /Certified agent (\S+)/.exec(added.stdout)?.[1];
    expect(laptopId).toBeDefined();
    expect(statSync(file).mode & 0o077).toBe(0);
    expect(runKith(['--data-dir', alice, 'agent', 'add', '--out', file], BASE).stderr).toMatch(
      /^kith: cannot write/,
    );

    const imported = runKith(['--data-dir', laptop, 'agent', 'import', file], BASE);
    expect(imported.stderr).toBe('');
    expect(imported.stdout).toMatch(/^Imported agent (\S+) of .* <alice@example\.org>/);
    expect(imported.stdout).toContain(laptopId);
    expect(imported.stdout).toMatch(/entity key\s+not kept here/);
    const id = JSON.parse(runKith(['--data-dir', laptop, 'id', '--json']).stdout) as {
      agentId: string;
      email: string;
    };
    expect(id).toMatchObject({ agentId: laptopId, email: 'alice@example.org' });
    expect(runKith(['--data-dir', laptop, 'agent', 'import', file], BASE).stderr).toMatch(
      /ERR|already has an identity/,
    );

    // The laptop starts and finds bob by itself (the bundle carried bob's key, certificate and addresses).
    nodes.push(await startKith(['--data-dir', laptop, 'start'], BASE, /Stop with Ctrl-C/));
    const laptopSeenByBob = () => bobsViewOfAlice().find((a) => a.agentId === laptopId);
    const linked = await until(() => {
      const seen = laptopSeenByBob();
      return seen?.linked ? seen : undefined;
    }, 'bob linked with the laptop');
    expect(linked).toMatchObject({ linked: true, revoked: false });

    const list = JSON.parse(runKith(['--data-dir', alice, 'agent', 'list', '--json']).stdout) as {
      agentId: string;
      self: boolean;
    }[];
    expect(list.filter((a) => a.self)).toHaveLength(1);
    expect(list.some((a) => a.agentId === laptopId && !a.self)).toBe(true);
    expect(
      runKith(['--data-dir', alice, 'agent', 'revoke', list.find((a) => a.self)!.agentId]).stderr,
    ).toMatch(/^kith: this is the agent you are talking to/);

    // The laptop is lost: alice's home agent revokes it, bob refuses it from then on.
    const revoked = runKith(['--data-dir', alice, 'agent', 'revoke', laptopId!]);
    expect(revoked.stderr).toBe('');
    expect(revoked.stdout).toMatch(/^Revoked agent/);
    const revokedSeen = await until(() => {
      const seen = laptopSeenByBob();
      return seen?.revoked ? seen : undefined;
    }, 'bob refusing the revoked laptop');
    expect(revokedSeen).toMatchObject({ linked: false, revoked: true });
  });

  it('a CLI command without a running node says how to start one', () => {
    const result = runKith(['--data-dir', join(dir.path, 'nobody'), 'contacts']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^kith: the Kith node is not running — start it with `kith start`/);
  });

  it('a port in use stops `kith start` with one line naming the key', async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    try {
      const carol = join(dir.path, 'carol');
      const result = runKith(['--data-dir', carol, 'start', '--email', 'carol@example.org'], {
        ...BASE,
        KITH_IMAP_PORT: String(port),
      });
      expect(result.status).toBe(1);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(new RegExp(`^kith: .*127\\.0\\.0\\.1:${port}.*in use.* — .*imap port`));
    } finally {
      busy.close();
    }
  });
});

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ImapFlow } from 'imapflow';
import { exited, KITH_BIN, LOOPBACK_NODE_ENV, runKith, startKith } from '../helpers/cli.ts';
import { openGatewayImap, type GatewayLogin } from '../helpers/imap-inbox.ts';
import { tempDir } from '../helpers/tmp.ts';

// The home node and the new agent as child processes, driven through the `kith` command line only.
const BASE = LOOPBACK_NODE_ENV;
const MESSAGES = 30;

function imapOf(dataDir: string): Promise<ImapFlow> {
  const s = JSON.parse(runKith(['--data-dir', dataDir, 'mail-settings', '--json']).stdout) as GatewayLogin;
  return openGatewayImap(s);
}

/** Runs `kith ARGS` to its end without blocking the test's event loop. */
async function kithAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [KITH_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return { status: await exited(child), stdout, stderr };
}

describe('`kith agent add` / `import`: the new agent receives the whole history, with a progress bar', () => {
  const dir = tempDir();
  const home = join(dir.path, 'home');
  const laptop = join(dir.path, 'laptop');
  const nodes: Awaited<ReturnType<typeof startKith>>[] = [];
  const clients: ImapFlow[] = [];

  beforeAll(async () => {
    nodes.push(
      await startKith(
        ['--data-dir', home, 'start', '--email', 'alice@history.kith'],
        BASE,
        /Stop with Ctrl-C/,
      ),
    );
    const client = await imapOf(home);
    clients.push(client);
    await client.mailboxCreate('Old');
    for (let i = 0; i < MESSAGES; i++) {
      const raw = `From: alice@history.kith\r\nTo: alice@history.kith\r\nSubject: old ${i}\r\n\r\nmessage ${i}\r\n`;
      await client.append(i % 3 === 0 ? 'Old' : 'INBOX', Buffer.from(raw), i % 2 === 0 ? ['\\Seen'] : []);
    }
  });

  afterAll(async () => {
    for (const c of clients) await c.logout().catch(() => c.close());
    for (const node of nodes) {
      node.child.kill('SIGTERM');
      await exited(node.child);
    }
    dir.remove();
  });

  it('after the import and a start, `kith agent history` follows until every change and message is there', async () => {
    const file = join(dir.path, 'laptop.kith-agent');
    expect(runKith(['--data-dir', home, 'agent', 'add', '--out', file], BASE).stderr).toBe('');
    const imported = runKith(['--data-dir', laptop, 'agent', 'import', file], BASE);
    expect(imported.stderr).toBe('');
    expect(imported.stdout).toContain('`kith agent history`');
    nodes.push(await startKith(['--data-dir', laptop, 'start'], BASE, /Stop with Ctrl-C/));

    const history = await kithAsync(['--data-dir', laptop, 'agent', 'history']);
    expect(history.status).toBe(0);
    // The bar (on stderr; a line per render when it is not a terminal) ends full.
    expect(history.stderr).toMatch(/history \[[^\]]*\] \d+\/\d+ \d+%/);
    expect(history.stderr).toMatch(
      new RegExp(`100% \\| \\d+/\\d+ changes, ${MESSAGES}/${MESSAGES} messages`),
    );
    const done = /history complete: (\d+)\/(\d+) changes, (\d+)\/(\d+) messages, from 1 sibling/.exec(
      history.stdout,
    );
    expect(done).not.toBeNull();
    expect(done![1]).toBe(done![2]);
    expect(Number(done![3])).toBe(MESSAGES);

    // What it says arrived is there for a mail client: every message, in its folder, with its flags.
    const client = await imapOf(laptop);
    clients.push(client);
    const look = async (box: string) => {
      const lock = await client.getMailboxLock(box);
      try {
        const out: Record<string, boolean> = {};
        for await (const m of client.fetch('1:*', { envelope: true, flags: true }))
          out[m.envelope?.subject ?? ''] = m.flags?.has('\\Seen') ?? false;
        return out;
      } finally {
        lock.release();
      }
    };
    const inbox = await look('INBOX');
    const old = await look('Old');
    expect(Object.keys(inbox).length + Object.keys(old).length).toBe(MESSAGES);
    for (let i = 0; i < MESSAGES; i++) {
      const where = i % 3 === 0 ? old : inbox;
      expect(where[`old ${i}`]).toBe(i % 2 === 0);
    }

    // Asked again, it is complete at once.
    const again = runKith(['--data-dir', laptop, 'agent', 'history', '--once']);
    expect(again.stdout).toMatch(new RegExp(`^history complete: .* ${MESSAGES}/${MESSAGES} messages`));
  });
});

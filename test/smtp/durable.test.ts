import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ALICE, BOB_FPR, aliceMessage } from './harness.ts';
import { RawSmtp } from './raw-client.ts';

interface ChildReport {
  port: number;
  outbox: Array<{ id: string; to: string; size: number; raw: string }>;
  submissions: Array<{ state: string; subject?: string }>;
}

function startChild(dir: string): Promise<{ child: ChildProcess; report: ChildReport }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'durable-child.ts'), dir],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NODE_OPTIONS: '' },
    },
  );
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    createInterface({ input: child.stdout! }).once('line', (line) => {
      child.removeAllListeners('exit');
      resolve({ child, report: JSON.parse(line) as ChildReport });
    });
  });
}

describe('250 only after the message is durable', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  test('kill -9 right after 250: after a restart the agent finds the message, byte for byte', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kith-durable-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const first = await startChild(dir);
    cleanup.push(() => void first.child.kill('SIGKILL'));
    expect(first.report.outbox).toEqual([]);

    const { client } = await RawSmtp.connect(first.report.port);
    cleanup.push(() => client.close());
    expect((await client.login(ALICE.user, ALICE.password)).code).toBe(235);
    await client.command('MAIL FROM:<alice@example.org>');
    await client.command('RCPT TO:<bob@example.org>');
    const body = `${'x'.repeat(998)}\r\n`.repeat(4000); // ~4 MB, several chunks on the way to disk
    const message = aliceMessage({ subject: 'survives kill -9', body });
    const exited = new Promise((r) => first.child.once('exit', r));
    const reply = client.data(message);
    const accepted = await reply;
    // no grace: the process dies the moment the client holds its 250
    first.child.kill('SIGKILL');
    await exited;
    expect(accepted.code).toBe(250);

    const second = await startChild(dir);
    cleanup.push(async () => {
      const gone = new Promise((r) => second.child.once('exit', r));
      second.child.kill('SIGTERM');
      await gone;
    });
    expect(second.report.outbox).toHaveLength(1);
    const [copy] = second.report.outbox;
    expect(copy.to).toBe(BOB_FPR);
    expect(Buffer.from(copy.raw, 'base64').equals(Buffer.from(message))).toBe(true);
    expect(second.report.submissions).toMatchObject([{ state: 'accepted', subject: 'survives kill -9' }]);
  });
});

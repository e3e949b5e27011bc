import { afterAll, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { exited, LOOPBACK_NODE_ENV, runKith, startKith } from '../helpers/cli.ts';
import {
  childrenOf,
  fetchMailbox,
  freePort,
  killQuietly,
  until,
  type MailSettings,
} from '../helpers/kith-nodes.ts';
import { tempDir } from '../helpers/tmp.ts';
import { RawSmtp } from './raw-client.ts';

// durable.test.ts proves the submission server's side with a stand-in agent; this one kills a
// real node (`kith start`, its own redis-server with it) the moment the client holds its 250,
// and the message must still reach the recipient's INBOX, once.
const BASE = LOOPBACK_NODE_ENV;
const READY = /Stop with Ctrl-C/;

function settingsOf(dir: string): MailSettings {
  const result = runKith(['--data-dir', dir, 'mail-settings', '--json']);
  expect(result.status).toBe(0);
  return JSON.parse(result.stdout) as MailSettings;
}

/** Subjects in the INBOX, as an IMAP client sees them. */
async function inboxSubjects(settings: MailSettings): Promise<string[]> {
  return (await fetchMailbox(settings)).map((m) => m.subject);
}

describe('a real node killed right after 250', () => {
  const dir = tempDir();
  const alice = join(dir.path, 'alice');
  const bob = join(dir.path, 'bob');
  const running: Array<Awaited<ReturnType<typeof startKith>>> = [];
  const ports = new Map<string, number>();
  const start = async (data: string, email?: string) => {
    // each node keeps its P2P port across restarts, so neighbours redial it
    if (!ports.has(data)) ports.set(data, await freePort());
    const node = await startKith(
      ['--data-dir', data, 'start', ...(email ? ['--email', email] : [])],
      {
        ...BASE,
        KITH_P2P_LISTEN: `["/ip4/127.0.0.1/tcp/${ports.get(data)}"]`,
      },
      READY,
    );
    running.push(node);
    return node;
  };
  const stop = async (node: Awaited<ReturnType<typeof startKith>>) => {
    node.child.kill('SIGTERM');
    expect(await exited(node.child)).toBe(0);
  };

  afterAll(async () => {
    for (const node of running) {
      if (node.child.exitCode === null && node.child.signalCode === null) {
        const redis = childrenOf(node.child.pid!);
        node.child.kill('SIGTERM');
        const timer = setTimeout(() => {
          node.child.kill('SIGKILL');
          for (const pid of redis) killQuietly(pid);
        }, 30_000);
        await exited(node.child);
        clearTimeout(timer);
      }
    }
    dir.remove();
  });

  test('SIGKILL of the sender after 250, restart from its data dir: the recipient gets it once', async () => {
    const [a1, b1] = await Promise.all([start(alice, 'alice@example.org'), start(bob, 'bob@example.org')]);
    const code = runKith(['--data-dir', alice, 'invite', '--ttl', '5']).stdout.trim();
    expect(runKith(['--data-dir', bob, 'accept', code]).stdout).toMatch(/Now linked/);
    // the two exchange signed address records when the link comes up: what a restarted node
    // redials. Wait until each holds the other's (a fixed 2 s wait lost the race under load).
    for (const [who, other] of [
      [alice, 'bob@example.org'],
      [bob, 'alice@example.org'],
    ]) {
      await until(() => {
        const contacts = JSON.parse(runKith(['--data-dir', who, 'contacts', '--json']).stdout) as Array<{
          email: string;
          agents: Array<{ addresses: string[] }>;
        }>;
        return contacts.some((c) => c.email === other && c.agents.some((a) => a.addresses.length > 0))
          ? true
          : undefined;
      }, `${who} to hold the address of ${other}`);
    }
    // Bob goes offline: the message cannot have left before the kill, so only the restarted node can send it.
    await stop(b1);

    const settings = settingsOf(alice);
    const { client } = await RawSmtp.connect(settings.smtp.port);
    expect((await client.login(settings.user, settings.pass)).code).toBe(235);
    expect((await client.command('MAIL FROM:<alice@example.org>')).code).toBe(250);
    expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    const message = [
      'From: Alice <alice@example.org>',
      'To: bob@example.org',
      'Subject: survives SIGKILL',
      'Message-ID: <sigkill-1@example.org>',
      '',
      `${'x'.repeat(998)}\r\n`.repeat(4000),
    ].join('\r\n');
    const redis = childrenOf(a1.child.pid!);
    const gone = exited(a1.child);
    const reply = await client.data(message);
    // no grace: the node and its redis-server die the moment the client holds its 250, as in a power cut
    a1.child.kill('SIGKILL');
    for (const pid of redis) killQuietly(pid);
    await gone;
    client.close();
    expect(reply.code).toBe(250);

    // Bob first, so the restarted sender finds him at once when it redials its neighbours
    await start(bob);
    await start(alice);
    // port 0 everywhere: the restarted node listens elsewhere
    const bobSettings = settingsOf(bob);
    let subjects: string[] = [];
    try {
      await until(async () => {
        subjects = (await inboxSubjects(bobSettings)).filter((s) => s === 'survives SIGKILL');
        return subjects.length > 0 ? true : undefined;
      }, "the message in bob's INBOX");
    } catch {
      // fall through to the diagnostics below
    }
    if (subjects.length === 0) {
      console.log(
        runKith(['--data-dir', alice, 'outbox']).stdout,
        runKith(['--data-dir', alice, 'contacts']).stdout,
        runKith(['--data-dir', bob, 'contacts']).stdout,
        running.map((n) => n.stderr()).join('\n----\n'),
      );
    }
    expect(subjects).toEqual(['survives SIGKILL']);
    // a duplicate would come from a re-send after the restart; once alice's outbox says
    // delivered she sends no more, so the count is final then
    await until(
      () => (/\bdelivered\b/.test(runKith(['--data-dir', alice, 'outbox']).stdout) ? true : undefined),
      "alice's outbox to say delivered",
    );
    expect((await inboxSubjects(bobSettings)).filter((s) => s === 'survives SIGKILL')).toEqual([
      'survives SIGKILL',
    ]);
  }, 600_000);
});

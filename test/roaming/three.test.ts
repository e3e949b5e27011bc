import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ImapFlow } from 'imapflow';
import { peerIdFromString } from '@libp2p/peer-id';
import { startEntity, until, type Entity } from './entity.ts';

const NAMES = ['home', 'laptop', 'phone'];
const FOLDERS = ['Work', 'Lists', 'Archive', 'Trash'];
const FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '$Label1'];

/** A seeded generator, so a failing run can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

/** Every mailbox of a device as an IMAP client sees it: name → sorted "subject flags" lines. */
async function state(client: ImapFlow): Promise<string> {
  const out: string[] = [];
  const boxes = (await client.list()).map((b) => b.path).sort();
  for (const path of boxes) {
    const lock = await client.getMailboxLock(path);
    try {
      const lines: string[] = [];
      if (client.mailbox && client.mailbox.exists > 0) {
        for await (const m of client.fetch('1:*', { envelope: true, flags: true })) {
          const flags = [...(m.flags ?? [])].filter((f) => f !== '\\Recent').sort();
          lines.push(`${m.envelope?.subject} ${flags.join(',')}`);
        }
      }
      out.push(`${path}: ${lines.sort().join(' | ')}`);
    } finally {
      lock.release();
    }
  }
  return out.join('\n');
}

/** One random user action over IMAP: a flag set or cleared, a move, an expunge (returns its subject). */
async function act(client: ImapFlow, random: () => number): Promise<string | undefined> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];
  const from = pick(['INBOX', ...FOLDERS]);
  const lock = await client.getMailboxLock(from);
  try {
    if (!client.mailbox || client.mailbox.exists === 0) return;
    const uids = (await client.search({ all: true }, { uid: true })) || [];
    if (uids.length === 0) return;
    const uid = String(pick(uids));
    const what = random();
    if (what < 0.3) await client.messageFlagsAdd(uid, [pick(FLAGS)], { uid: true });
    else if (what < 0.55) await client.messageFlagsRemove(uid, [pick(FLAGS)], { uid: true });
    else if (what < 0.85) {
      const to = pick(['INBOX', ...FOLDERS].filter((f) => f !== from));
      await client.messageMove(uid, to, { uid: true });
    } else {
      const m = await client.fetchOne(uid, { envelope: true }, { uid: true });
      await client.messageDelete(uid, { uid: true });
      return m ? m.envelope?.subject : undefined;
    }
  } finally {
    lock.release();
  }
}

describe('roaming: three devices, each offline in turn, random changes over IMAP', () => {
  let alice: Entity;
  beforeAll(async () => {
    alice = await startEntity(NAMES);
    await alice.link('laptop', 'home');
    await alice.link('phone', 'home');
    await alice.link('phone', 'laptop');
  });
  afterAll(async () => alice?.close(), 60_000);

  const converged = async (names: string[], what: string) => {
    let last: string[] = [];
    await until(
      async () => {
        last = [];
        for (const n of names) last.push(await state(await alice.imap(n)));
        return last.every((s) => s === last[0]) ? true : undefined;
      },
      60_000,
      what,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${names.map((n, i) => `--- ${n}\n${last[i]}`).join('\n')}`);
    });
    return last[0];
  };

  it('converge to the same mailboxes, messages and flags, with no message lost or duplicated', async () => {
    const home = await alice.imap('home');
    await home.mailboxCreate('Work');
    await home.mailboxCreate('Lists');
    for (let i = 0; i < 30; i++) {
      await home.append('INBOX', Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n`), []);
    }
    await converged(NAMES, 'the seed on every device');
    const random = rng(13);
    const expunged = new Set<string>();
    const note = (subject: string | undefined) => subject && expunged.add(subject);
    for (const away of NAMES) {
      await alice.stop(away);
      const online = NAMES.filter((n) => n !== away);
      for (let i = 0; i < 20; i++) {
        note(await act(await alice.imap(online[i % 2]), random));
      }
      await alice.start(away);
      for (const other of online) await alice.link(away, other);
      await converged(NAMES, `convergence after ${away} came back`);
    }
    // Now all three apart at once: each changes things on its own, then they link again.
    for (const [x, y] of [
      ['laptop', 'home'],
      ['phone', 'home'],
      ['phone', 'laptop'],
    ]) {
      const [nx, ny] = [alice.node(x), alice.node(y)];
      await nx.links.libp2p.hangUp(peerIdFromString(ny.identity.agentId));
      await until(
        () =>
          !nx.links.isLinked(ny.identity.agentId) && !ny.links.isLinked(nx.identity.agentId)
            ? true
            : undefined,
        10_000,
        `${x} and ${y} apart`,
      );
    }
    for (let i = 0; i < 30; i++) note(await act(await alice.imap(NAMES[i % 3]), random));
    await alice.link('laptop', 'home');
    await alice.link('phone', 'home');
    await alice.link('phone', 'laptop');
    const final = await converged(NAMES, 'convergence after a partition');
    const subjects = [...final.matchAll(/\bm\d+\b/g)].map((m) => m[0]).sort();
    // Every message not expunged by someone is there, exactly once.
    const expected = Array.from({ length: 30 }, (_, i) => `m${i}`).filter((m) => !expunged.has(m));
    expect(subjects).toEqual(expected.sort());
    expect(expunged.size).toBeGreaterThan(0);
  });
});

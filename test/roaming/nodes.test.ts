import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ImapFlow } from 'imapflow';
import { recipientKeyIds, wrapKeyId } from '../../agent/payload/wrap.ts';
import { send } from '../agents/network.ts';
import { until } from '../helpers/until.ts';
import { startEntity, type Entity } from './entity.ts';

/** The key id of the entity's encryption subkey, as a PKESK to it carries. */
async function entityKeyId(entity: Entity): Promise<string> {
  const key = entity.node('home').identity.entityPublic;
  return (await key.getEncryptionKey()).getKeyID().toHex();
}

const message = (subject: string) =>
  Buffer.from(
    `From: alice@roaming.kith\r\nTo: alice@roaming.kith\r\nSubject: ${subject}\r\n\r\nbody of ${subject}\r\n`,
  );

/** Subjects and flags of a mailbox as an IMAP client sees them (a fresh look each time). */
async function look(client: ImapFlow, mailbox = 'INBOX'): Promise<Map<string, string[]>> {
  const lock = await client.getMailboxLock(mailbox);
  try {
    const out = new Map<string, string[]>();
    if ((client.mailbox && client.mailbox.exists) === 0) return out;
    for await (const m of client.fetch('1:*', { envelope: true, flags: true })) {
      out.set(m.envelope?.subject ?? '', [...(m.flags ?? [])].sort());
    }
    return out;
  } finally {
    lock.release();
  }
}

async function uidOf(client: ImapFlow, subject: string, mailbox = 'INBOX'): Promise<number> {
  const lock = await client.getMailboxLock(mailbox);
  try {
    const uids = (await client.search({ subject }, { uid: true })) || [];
    if (uids.length !== 1)
      throw new Error(`expected one message "${subject}" in ${mailbox}, found ${uids.length}`);
    return uids[0];
  } finally {
    lock.release();
  }
}

/** Measured, not asserted (no wall-clock assertions): printed at the end for the report. */
let idleLatencyMs: number | undefined;

describe('roaming: two agents of one entity keep one mailbox over their link', () => {
  let alice: Entity;
  let bob: Entity;
  const validity = new Map<string, bigint | undefined>();
  const uidValidity = async (name: string) => {
    const status = await (await alice.imap(name)).status('INBOX', { uidValidity: true });
    return status === false ? undefined : status.uidValidity;
  };
  beforeAll(async () => {
    alice = await startEntity(['home', 'laptop']);
    await alice.link('laptop', 'home');
    for (const name of ['home', 'laptop']) validity.set(name, await uidValidity(name));
  });
  afterAll(async () => {
    if (idleLatencyMs !== undefined)
      process.stdout.write(`IDLE saw home's flag on the laptop after ${idleLatencyMs} ms\n`);
    await bob?.close();
    await alice?.close();
  });

  it('a message appended on one device shows on the other, and flags set on each show on both', async () => {
    const home = await alice.imap('home');
    const laptop = await alice.imap('laptop');
    await home.append('INBOX', message('first'), []);
    await until(async () => ((await look(laptop)).has('first') ? true : undefined), 'first on the laptop');

    const onLaptop = await uidOf(laptop, 'first');
    const onHome = await uidOf(home, 'first');
    let lock = await laptop.getMailboxLock('INBOX');
    await laptop.messageFlagsAdd(String(onLaptop), ['\\Seen'], { uid: true });
    lock.release();
    lock = await home.getMailboxLock('INBOX');
    await home.messageFlagsAdd(String(onHome), ['\\Answered'], { uid: true });
    lock.release();
    const both = ['\\Answered', '\\Seen'];
    await until(
      async () => (String((await look(home)).get('first')) === String(both) ? true : undefined),
      'flags on home',
    );
    await until(
      async () => (String((await look(laptop)).get('first')) === String(both) ? true : undefined),
      'flags on the laptop',
    );
  });

  it('a folder made and a message moved into it on the laptop: home has the folder and the message there, once', async () => {
    const home = await alice.imap('home');
    const laptop = await alice.imap('laptop');
    await laptop.mailboxCreate('Work');
    const lock = await laptop.getMailboxLock('INBOX');
    await laptop.messageMove(String(await uidOfIn(laptop, 'first')), 'Work', { uid: true });
    lock.release();
    await until(
      async () => ((await look(home, 'Work')).has('first') ? true : undefined),
      'first in Work on home',
    );
    expect((await look(home, 'INBOX')).has('first')).toBe(false);
    expect(String((await look(home, 'Work')).get('first'))).toBe(String(['\\Answered', '\\Seen']));
  });

  it('the laptop is off while home changes things; started again it catches up', async () => {
    await alice.stop('laptop');
    const home = await alice.imap('home');
    await home.append('INBOX', message('while away'), ['\\Flagged']);
    const lock = await home.getMailboxLock('Work');
    await home.messageFlagsRemove('1:*', ['\\Seen']);
    lock.release();
    await alice.start('laptop');
    await alice.link('laptop', 'home');
    const laptop = await alice.imap('laptop');
    await until(async () => ((await look(laptop)).has('while away') ? true : undefined), 'the new message');
    expect((await look(laptop)).get('while away')).toEqual(['\\Flagged']);
    await until(
      async () => (String((await look(laptop, 'Work')).get('first')) === '\\Answered' ? true : undefined),
      '\\Seen cleared on the laptop',
    );
  });

  it('a mail client idling on the laptop hears a flag set on home, without asking (IDLE)', async () => {
    const laptop = await alice.imap('laptop');
    await laptop.mailboxOpen('INBOX');
    const heard = new Promise<{ flags: Set<string> }>((resolve) => laptop.once('flags', resolve));
    void laptop.idle();
    const home = await alice.imap('home');
    const lock = await home.getMailboxLock('INBOX');
    const t0 = Date.now();
    await home.messageFlagsAdd(String(await uidOfIn(home, 'while away')), ['$Important'], { uid: true });
    lock.release();
    const event = await heard;
    expect([...event.flags]).toContain('$Important');
    idleLatencyMs = Date.now() - t0;
  });

  it('mail from a friend reaching one agent of the entity ends up in both INBOXes, once each', async () => {
    bob = await startEntity(['bob']);
    const code = alice.node('home').links.createInvitation({ ttlMs: 60_000 });
    await bob.node('bob').links.acceptInvitation(code);
    await send(bob.node('bob'), alice.node('home'), { text: 'hello from bob\nhi alice' });
    const laptop = await alice.imap('laptop');
    const home = await alice.imap('home');
    await until(async () => ((await look(home)).has('hello from bob') ? true : undefined), 'on home');
    await until(async () => ((await look(laptop)).has('hello from bob') ? true : undefined), 'on the laptop');
    for (const client of [home, laptop]) {
      const lock = await client.getMailboxLock('INBOX');
      expect(await client.search({ subject: 'hello from bob' }, { uid: true })).toHaveLength(1);
      lock.release();
    }
    // Bob encrypted once, the session key wrapped for each of alice's agents (their own X25519
    // keys, and the entity key for a device bob does not know yet: agent/payload/wrap.ts), and the
    // laptop got that same ciphertext from home and opened it with its own key: what it shows was
    // rebuilt from it, not copied in plain.
    const keysOf = (name: string) => alice.node(name).identity.onion.publicKey;
    const sealed = [...alice.node('home').roaming.store.sealedIds()].map((id) =>
      alice.node('home').roaming.store.sealed(id),
    );
    expect(sealed).toHaveLength(1);
    expect((await recipientKeyIds(sealed[0]!.subarray(20))).sort()).toEqual(
      [await wrapKeyId(keysOf('home')), await wrapKeyId(keysOf('laptop')), await entityKeyId(alice)].sort(),
    );
    expect(Buffer.compare(keysOf('home'), keysOf('laptop'))).not.toBe(0);
    expect(alice.node('home').roaming.engine.counters.sealedSent).toBeGreaterThanOrEqual(1);
    expect(alice.node('laptop').roaming.engine.counters.sealedReceived).toBeGreaterThanOrEqual(1);
    expect(alice.node('laptop').roaming.engine.counters.sealedFallback).toBe(0);
    // Sync never changes a gateway's UIDVALIDITY (each gateway numbers its own UIDs).
    for (const name of ['home', 'laptop']) expect(await uidValidity(name)).toBe(validity.get(name));
  });

  it('a friend trusted on one device is trusted on the other; revoked on that one, it is revoked on both', async () => {
    const fpr = bob.node('bob').identity.fingerprint;
    // home redeemed nothing itself: bob accepted home's invitation, so home trusts bob.
    expect(alice.node('home').trust.entity(fpr)?.trusted).toBe(true);
    await until(
      () => (alice.node('laptop').trust.entity(fpr)?.trusted ? true : undefined),
      'bob trusted on the laptop',
    );
    expect(alice.node('laptop').trust.entity(fpr)?.publicKey).toBe(
      alice.node('home').trust.entity(fpr)?.publicKey,
    );
    alice.node('laptop').links.revoke(fpr);
    await until(
      () => (alice.node('home').trust.entity(fpr)?.revokedAt !== undefined ? true : undefined),
      'bob revoked on home',
    );
  });
});

async function uidOfIn(client: ImapFlow, subject: string): Promise<number> {
  const uids = (await client.search({ subject }, { uid: true })) || [];
  if (uids.length !== 1) throw new Error(`expected one "${subject}", found ${uids.length}`);
  return uids[0];
}

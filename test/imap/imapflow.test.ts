import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ImapFlow } from 'imapflow';
import { connect as tlsConnect } from 'node:tls';
import { PASS, USER, sampleMessage, startHarness, type Harness } from './harness.ts';

let h: Harness;
const clients: ImapFlow[] = [];

beforeAll(async () => {
  h = await startHarness({ allowInsecureAuth: false });
});
afterAll(async () => {
  for (const c of clients) await c.logout().catch(() => c.close());
  await h.close();
});

// STARTTLS on the plain port, trusting exactly our self-signed certificate.
async function connect(opts: { secure?: boolean } = {}): Promise<ImapFlow> {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port: opts.secure ? h.tlsPort : h.port,
    secure: opts.secure ?? false,
    doSTARTTLS: opts.secure ? undefined : true,
    auth: { user: USER, pass: PASS },
    tls: { ca: [h.tls.cert], servername: 'localhost' },
    logger: false,
  });
  await client.connect();
  clients.push(client);
  return client;
}

describe('imapflow against the Kith IMAP server', () => {
  test('special-use mailboxes exist from the start', async () => {
    const c = await connect();
    const list = await c.list();
    const byName = new Map(list.map((m) => [m.path, m.specialUse]));
    expect(byName.get('INBOX')).toBe('\\Inbox');
    expect(byName.get('Sent')).toBe('\\Sent');
    expect(byName.get('Drafts')).toBe('\\Drafts');
    expect(byName.get('Trash')).toBe('\\Trash');
    expect(byName.get('Junk')).toBe('\\Junk');
    expect(byName.get('Archive')).toBe('\\Archive');
  });

  test('a wrong password is refused', async () => {
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: h.port,
      secure: false,
      doSTARTTLS: true,
      auth: { user: USER, pass: 'wrong' },
      tls: { ca: [h.tls.cert], servername: 'localhost' },
      logger: false,
    });
    await expect(client.connect()).rejects.toThrow();
    client.close();
  });

  test('append, fetch, flags, search, copy, move and expunge', async () => {
    const c = await connect();
    const appended = await c.append(
      'Drafts',
      sampleMessage(1, '\r\nCafé au lait'),
      ['\\Draft', '\\Seen'],
      new Date('2026-01-02T03:04:05Z'),
    );
    expect(appended).toMatchObject({ destination: 'Drafts' });
    expect(appended && appended.uid).toBe(1);
    const lock = await c.getMailboxLock('Drafts');
    try {
      const msg = await c.fetchOne('1', {
        uid: true,
        flags: true,
        envelope: true,
        bodyStructure: true,
        source: true,
        internalDate: true,
        size: true,
      });
      expect(msg).toBeTruthy();
      if (!msg) return;
      expect(msg.uid).toBe(1);
      expect([...(msg.flags ?? [])].sort()).toEqual(['\\Draft', '\\Seen']);
      expect(msg.envelope?.subject).toBe('Test message 1');
      expect(msg.envelope?.from?.[0]).toMatchObject({ name: 'Bob Example', address: 'bob@example.net' });
      expect(msg.bodyStructure?.type).toBe('text/plain');
      expect(msg.source?.toString()).toContain('Café au lait');
      expect(msg.size).toBe(msg.source?.length);
      expect(new Date(msg.internalDate as Date).toISOString()).toBe('2026-01-02T03:04:05.000Z');

      await c.messageFlagsAdd('1', ['\\Flagged', '$Label1']);
      const flagged = await c.search({ flagged: true });
      expect(flagged).toEqual([1]);
      expect(await c.search({ body: 'café' })).toEqual([1]);
      expect(await c.search({ keyword: '$Label1' } as never)).toEqual([1]);
      expect(await c.search({ seen: false })).toEqual([]);

      const copied = await c.messageCopy('1', 'Archive');
      expect(copied && copied.uidMap?.get(1)).toBe(1);
      const moved = await c.messageMove('1', 'Trash');
      expect(moved && moved.uidMap?.get(1)).toBe(1);
      const status = await c.status('Drafts', { messages: true });
      expect(status).toMatchObject({ messages: 0 });
    } finally {
      lock.release();
    }
    const trash = await c.status('Trash', { messages: true, uidNext: true });
    expect(trash).toMatchObject({ messages: 1, uidNext: 2 });
    const lock2 = await c.getMailboxLock('Trash');
    try {
      await c.messageDelete('1:*');
      expect(await c.status('Trash', { messages: true })).toMatchObject({ messages: 0 });
    } finally {
      lock2.release();
    }
  });

  test('mailbox create, rename, delete and subscriptions', async () => {
    const c = await connect();
    await c.mailboxCreate(['Projects', 'Kith']);
    let names = (await c.list()).map((m) => m.path);
    expect(names).toEqual(expect.arrayContaining(['Projects', 'Projects/Kith']));
    await c.mailboxRename('Projects', 'Work');
    names = (await c.list()).map((m) => m.path);
    expect(names).toEqual(expect.arrayContaining(['Work', 'Work/Kith']));
    expect(names).not.toContain('Projects');
    await c.mailboxDelete('Work/Kith');
    names = (await c.list()).map((m) => m.path);
    expect(names).not.toContain('Work/Kith');
    await expect(c.mailboxDelete('INBOX')).rejects.toThrow();
    await c.mailboxCreate('Ünïcode');
    names = (await c.list()).map((m) => m.path);
    expect(names).toContain('Ünïcode');

    // Subscriptions: imapflow's UNSUBSCRIBE/SUBSCRIBE, seen by its LIST and by a raw LSUB.
    // imapflow sets `subscribed` only when the server said \Subscribed.
    const subscribed = async (path: string): Promise<boolean> => {
      const entry = (await c.list()).find((m) => m.path === path);
      expect(entry).toBeDefined();
      return entry!.subscribed === true;
    };
    // LSUB over the implicit-TLS port (this server refuses LOGIN in cleartext).
    const lsub = (): Promise<string[]> =>
      new Promise((resolve, reject) => {
        const sock = tlsConnect({ host: '127.0.0.1', port: h.tlsPort, rejectUnauthorized: false });
        let text = '';
        sock.on('data', (d: Buffer) => {
          text += d.toString('latin1');
          if (/\r\nb (OK|NO|BAD)[^\r\n]*\r\n$/.test(text)) {
            sock.destroy();
            resolve(text.split('\r\n').filter((l) => l.startsWith('* LSUB')));
          }
        });
        sock.on('error', reject);
        sock.write(`a LOGIN "${USER}" "${PASS}"\r\nb LSUB "" "*"\r\n`);
      });
    expect(await c.mailboxUnsubscribe('Work')).toBe(true);
    expect(await subscribed('Work')).toBe(false);
    expect(await lsub()).not.toContain('* LSUB (\\HasNoChildren) "/" "Work"');
    expect(await lsub()).toContain('* LSUB (\\HasNoChildren) "/" "INBOX"');
    expect(await c.mailboxSubscribe('Work')).toBe(true);
    expect(await subscribed('Work')).toBe(true);
    expect(await lsub()).toContain('* LSUB (\\HasNoChildren) "/" "Work"');
    expect(await c.mailboxSubscribe('Nonexistent')).toBe(false);
  });

  test('moving to Junk records a complaint candidate; moving back withdraws it', async () => {
    const c = await connect();
    const raw = Buffer.from(
      'From: spammer@example.com\r\nTo: alice@example.org\r\nSubject: buy\r\nX-Kith-Message-Id: 0123456789abcdef0123456789abcdef\r\n\r\nbuy now\r\n',
    );
    const events: string[] = [];
    const off = h.store.onComplaint((e) => events.push(e.kind));
    const { uid } = await h.store.deliver({ raw });
    const lock = await c.getMailboxLock('INBOX');
    try {
      const moved = await c.messageMove(String(uid), 'Junk', { uid: true });
      expect(moved).toBeTruthy();
    } finally {
      lock.release();
    }
    const candidates = h.store.complaintCandidates();
    expect(candidates).toHaveLength(1);
    expect(candidates[0]).toMatchObject({ kithId: '0123456789abcdef0123456789abcdef', mailbox: 'Junk' });
    const junk = await c.getMailboxLock('Junk');
    try {
      await c.messageMove('1:*', 'INBOX');
    } finally {
      junk.release();
    }
    expect(h.store.complaintCandidates()).toHaveLength(0);
    expect(events).toEqual(['recorded', 'withdrawn']);
    off();
  });

  test("deleting in Junk (Thunderbird's move to Trash) keeps the complaint", async () => {
    const c = await connect();
    const { uid } = await h.store.deliver({ raw: sampleMessage(78) });
    const before = h.store.complaintCandidates().length;
    const events: string[] = [];
    const off = h.store.onComplaint((e) => events.push(e.kind));
    let lock = await c.getMailboxLock('INBOX');
    let inJunk: number;
    try {
      const moved = await c.messageMove(String(uid), 'Junk', { uid: true });
      inJunk = moved ? moved.uidMap!.get(uid)! : 0;
    } finally {
      lock.release();
    }
    lock = await c.getMailboxLock('Junk');
    try {
      const moved = await c.messageMove(String(inJunk), 'Trash', { uid: true });
      expect(moved && moved.uidMap!.size).toBe(1);
    } finally {
      lock.release();
    }
    lock = await c.getMailboxLock('Trash');
    try {
      await c.messageDelete('1:*');
    } finally {
      lock.release();
    }
    off();
    expect(events).toEqual(['recorded']);
    expect(h.store.complaintCandidates()).toHaveLength(before + 1);
  });

  test('$Junk flag records and clearing it withdraws', async () => {
    const c = await connect();
    const { uid } = await h.store.deliver({ raw: sampleMessage(77) });
    const before = h.store.complaintCandidates().length;
    const lock = await c.getMailboxLock('INBOX');
    try {
      await c.messageFlagsAdd(String(uid), ['$Junk'], { uid: true });
      expect(h.store.complaintCandidates()).toHaveLength(before + 1);
      await c.messageFlagsRemove(String(uid), ['$Junk'], { uid: true });
      expect(h.store.complaintCandidates()).toHaveLength(before);
    } finally {
      lock.release();
    }
  });

  test('IDLE hears a delivered message, pushed by the server', async () => {
    const c = await connect();
    const lock = await c.getMailboxLock('INBOX');
    try {
      const before = (c.mailbox && typeof c.mailbox === 'object' ? c.mailbox.exists : 0) ?? 0;
      const idling = c.idle();
      await new Promise((r) => setTimeout(r, 100));
      const heard = new Promise<number>((resolve) =>
        c.once('exists', (d: { count: number }) => resolve(d.count)),
      );
      await h.store.deliver({ raw: sampleMessage(500) });
      // No stopwatch (it failed under load): imapflow sends nothing while idling, so the EXISTS
      // it hears was pushed by the server.
      expect(await heard).toBe(before + 1);
      void idling;
    } finally {
      lock.release();
    }
  });

  test('two sessions see each other’s flag changes and expunges', async () => {
    const a = await connect();
    const b = await connect();
    await h.store.deliver({ raw: sampleMessage(600) });
    const la = await a.getMailboxLock('INBOX');
    const lb = await b.getMailboxLock('INBOX');
    try {
      const n = (b.mailbox && typeof b.mailbox === 'object' ? b.mailbox.exists : 0) ?? 0;
      const flagsSeen = new Promise<{ uid?: number; flags: Set<string> }>((resolve) =>
        b.once('flags', resolve),
      );
      await a.messageFlagsAdd(String(n), ['\\Flagged']);
      await b.noop();
      const ev = await flagsSeen;
      expect([...ev.flags]).toContain('\\Flagged');
      const expunged = new Promise<{ seq: number }>((resolve) => b.once('expunge', resolve));
      await a.messageDelete(String(n));
      await b.noop();
      expect((await expunged).seq).toBe(n);
      expect(b.mailbox && typeof b.mailbox === 'object' ? b.mailbox.exists : -1).toBe(n - 1);
    } finally {
      la.release();
      lb.release();
    }
  });

  test('implicit TLS port works', async () => {
    const c = await connect({ secure: true });
    const st = await c.status('INBOX', { messages: true });
    expect(st && st.messages).toBeGreaterThan(0);
  });

  test('UIDVALIDITY, UIDs and MODSEQ survive a restart', async () => {
    const c = await connect();
    const before = await c.status('INBOX', {
      uidValidity: true,
      uidNext: true,
      highestModseq: true,
      messages: true,
    });
    const lock = await c.getMailboxLock('INBOX');
    const uids = await c.search({ all: true }, { uid: true });
    lock.release();
    await c.logout();
    await h.restart();
    const d = await connect();
    const after = await d.status('INBOX', {
      uidValidity: true,
      uidNext: true,
      highestModseq: true,
      messages: true,
    });
    expect(after).toEqual(before);
    const lock2 = await d.getMailboxLock('INBOX');
    try {
      expect(await d.search({ all: true }, { uid: true })).toEqual(uids);
    } finally {
      lock2.release();
    }
  });
});

import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { BlobStore } from '../../store/blobs.ts';
import { groupCommitOf, Rider } from '../../store/group-commit.ts';
import { complaintAction, createMailStore, type MailStore } from '../../gateway/mailbox/index.ts';
import { applyFlags, toCrlf } from '../../gateway/mailbox/decisions.ts';

let dir: string;
let db: Db;
let store: MailStore;

async function open(): Promise<MailStore> {
  db = openDatabase(join(dir, 'kith.db'));
  const blobs = new BlobStore(join(dir, 'blobs'));
  await blobs.init();
  const s = createMailStore({ db, blobs, log: silentLogger() });
  await s.start();
  return s;
}

const msg = (subject: string, body = 'hello'): Buffer =>
  Buffer.from(`From: a@example.org\r\nSubject: ${subject}\r\n\r\n${body}\r\n`);

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kith-mbx-'));
  store = await open();
});
afterEach(async () => {
  await store.stop();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('mailbox store', () => {
  test('special-use mailboxes exist and cannot be deleted', () => {
    expect(store.mailboxes().map((m) => [m.name, m.specialUse])).toEqual(
      expect.arrayContaining([
        ['INBOX', null],
        ['Sent', '\\Sent'],
        ['Drafts', '\\Drafts'],
        ['Trash', '\\Trash'],
        ['Junk', '\\Junk'],
        ['Archive', '\\Archive'],
      ]),
    );
    expect(() => store.deleteMailbox('Junk')).toThrow(
      expect.objectContaining({ code: 'ERR_SPECIAL_MAILBOX' }),
    );
    expect(() => store.mailbox('Nope')).toThrow(expect.objectContaining({ code: 'ERR_NO_MAILBOX' }));
    expect(() => store.createMailbox('inbox')).toThrow(
      expect.objectContaining({ code: 'ERR_MAILBOX_EXISTS' }),
    );
    expect(() => store.createMailbox('a//b')).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_MAILBOX_NAME' }),
    );
  });

  test('deliver is committed when it resolves: a crash right after loses nothing', async () => {
    const { uid } = await store.deliver({ raw: msg('durable') });
    // Reopen the file without stopping anything, as after kill -9.
    const other = openDatabase(join(dir, 'kith.db'));
    const row = other.prepare('SELECT count(*) AS n FROM mbx_entries WHERE uid = ?').get(uid) as {
      n: number;
    };
    other.close();
    expect(row.n).toBe(1);
  });

  test("a rider (the agent's delivered mark) commits with the message, in its commit", async () => {
    db.exec('CREATE TABLE marks (id TEXT PRIMARY KEY)');
    const mark = (id: string) => new Rider(db, () => db.prepare('INSERT INTO marks VALUES (?)').run(id));
    const marks = (): string[] => {
      const other = openDatabase(join(dir, 'kith.db'));
      try {
        return (other.prepare('SELECT id FROM marks ORDER BY id').all() as { id: string }[]).map((r) => r.id);
      } finally {
        other.close();
      }
    };
    const before = { ...groupCommitOf(db).stats };
    const rider = mark('m1');
    await store.deliver({ raw: msg('with its mark'), with: rider });
    expect(rider.taken).toBe(true);
    expect(marks()).toEqual(['m1']);
    expect(groupCommitOf(db).stats.commits - before.commits).toBe(1);
  });

  test("arrival listeners write in the message's own commit; one that throws is rolled back alone", async () => {
    db.exec('CREATE TABLE seen (uid INTEGER PRIMARY KEY)');
    const told: boolean[] = [];
    const stopGood = store.onArrival!((a) => {
      db.prepare('INSERT INTO seen VALUES (?)').run(a.uid);
      return (committed) => told.push(committed);
    });
    const stopBad = store.onArrival!(() => {
      db.prepare('INSERT INTO seen VALUES (?)').run(999);
      throw new Error('listener bug');
    });
    const before = { ...groupCommitOf(db).stats };
    const { uid } = await store.deliver({ raw: msg('arrives') });
    expect(groupCommitOf(db).stats.commits - before.commits).toBe(1);
    expect(told).toEqual([true]);
    const other = openDatabase(join(dir, 'kith.db'));
    try {
      expect(other.prepare('SELECT uid FROM seen').all()).toEqual([{ uid }]);
    } finally {
      other.close();
    }
    // A client's APPEND (it has an origin) is not an arrival.
    await store.append({ raw: msg('appended'), origin: 'session' });
    expect(told).toEqual([true]);
    stopGood();
    stopBad();
  });

  test('UIDVALIDITY and UIDs survive a restart; UIDs are never reused; MODSEQ only grows', async () => {
    await store.deliver({ raw: msg('1') });
    const { uid: second } = await store.deliver({ raw: msg('2') });
    const box = store.mailbox('INBOX');
    store.setFlags(box.id, [second], 'add', ['\\Deleted']);
    store.expunge(box.id);
    const modseqBefore = store.mailbox('INBOX').highestModseq;
    await store.stop();
    db.close();
    store = await open();
    const again = store.mailbox('INBOX');
    expect(again.uidValidity).toBe(box.uidValidity);
    expect(store.entries(again.id).map((e) => e.uid)).toEqual([1]);
    const { uid: third } = await store.deliver({ raw: msg('3') });
    expect(third).toBe(3);
    expect(store.mailbox('INBOX').highestModseq).toBeGreaterThan(modseqBefore);
  });

  test('expunged UIDs are kept with their MODSEQ (QRESYNC VANISHED), across a restart', async () => {
    const box = store.mailbox('INBOX');
    for (let i = 1; i <= 4; i++) await store.deliver({ raw: msg(String(i)) });
    store.setFlags(box.id, [2], 'add', ['\\Deleted']);
    store.expunge(box.id);
    const afterFirst = store.mailbox('INBOX').highestModseq;
    store.move(box.id, [3], 'Archive');
    expect(store.vanished(box.id, 0)).toEqual([2, 3]);
    expect(store.vanished(box.id, afterFirst)).toEqual([3]);
    await store.stop();
    db.close();
    store = await open();
    expect(store.vanished(box.id, 0)).toEqual([2, 3]);
    expect(store.vanished(store.mailbox('Archive').id, 0)).toEqual([]);
  });

  test('a re-created mailbox gets a new UIDVALIDITY', () => {
    const first = store.createMailbox('Tmp').uidValidity;
    store.deleteMailbox('Tmp');
    expect(store.createMailbox('Tmp').uidValidity).toBeGreaterThan(first);
  });

  test('large messages live in blob files, removed when the last copy is expunged', async () => {
    const big = msg('big', 'x'.repeat(400_000));
    const { uid } = await store.deliver({ raw: big });
    const box = store.mailbox('INBOX');
    const [row] = store.messages(box.id, [uid], { raw: true });
    expect(row!.blob).toMatch(/^[0-9a-f]{64}$/);
    expect((await store.readRaw(row!)).equals(big)).toBe(true);
    const copy = store.copy(box.id, [uid], 'Archive');
    store.setFlags(box.id, [uid], 'add', ['\\Deleted']);
    store.expunge(box.id);
    const shard = row!.blob!.slice(0, 2);
    expect(readdirSync(join(dir, 'blobs', shard))).toContain(row!.blob);
    const archive = store.mailbox('Archive');
    store.setFlags(archive.id, [copy.pairs[0]![1]], 'add', ['\\Deleted']);
    store.expunge(archive.id);
    await store.stop(); // waits for the blob removal in flight
    expect(readdirSync(join(dir, 'blobs', shard))).not.toContain(row!.blob);
    store = await open();
  });

  test('a Kith message id is found while some mailbox holds the message, not after its last copy goes', async () => {
    const kithId = '0123456789abcdef0123456789abcdef';
    expect(store.holdsKithMessage(kithId)).toBe(false);
    const raw = Buffer.from(
      `X-Kith-Message-Id: ${kithId}\r\nFrom: a@example.org\r\nSubject: k\r\n\r\nhi\r\n`,
    );
    const { uid } = await store.deliver({ raw });
    expect(store.holdsKithMessage(kithId)).toBe(true);
    expect(store.holdsKithMessage('ffffffffffffffffffffffffffffffff')).toBe(false);
    const inbox = store.mailbox('INBOX');
    const moved = store.copy(inbox.id, [uid], 'Archive');
    store.setFlags(inbox.id, [uid], 'add', ['\\Deleted']);
    store.expunge(inbox.id);
    expect(store.holdsKithMessage(kithId)).toBe(true); // the user filed it: still held
    const archive = store.mailbox('Archive');
    store.setFlags(archive.id, [moved.pairs[0]![1]], 'add', ['\\Deleted']);
    store.expunge(archive.id);
    expect(store.holdsKithMessage(kithId)).toBe(false);
  });

  test('renaming INBOX moves its messages and leaves INBOX empty', async () => {
    await store.deliver({ raw: msg('x') });
    store.renameMailbox('INBOX', 'Old');
    expect(store.status('INBOX').messages).toBe(0);
    expect(store.status('Old').messages).toBe(1);
  });

  test('complaints: Junk to Trash and expunge keep it; $NotJunk or a move to INBOX withdraws it', async () => {
    const events: string[] = [];
    const off = store.onComplaint((e) => events.push(`${e.kind} ${e.candidate.mailbox}`));
    const inbox = store.mailbox('INBOX');
    const junk = store.mailbox('Junk');
    const trash = store.mailbox('Trash');
    const { uid } = await store.deliver({ raw: msg('spam') });
    const [, inJunk] = store.move(inbox.id, [uid], 'Junk').pairs[0]!;
    const [, inTrash] = store.move(junk.id, [inJunk], 'Trash').pairs[0]!;
    expect(store.complaintCandidates()).toHaveLength(1);
    store.setFlags(trash.id, [inTrash], 'add', ['\\Deleted']);
    store.expunge(trash.id);
    expect(store.complaintCandidates()).toHaveLength(1);

    const { uid: second } = await store.deliver({ raw: msg('ham') });
    const [, junked] = store.move(inbox.id, [second], 'Junk').pairs[0]!;
    store.setFlags(junk.id, [junked], 'add', ['$NotJunk']);
    const { uid: third } = await store.deliver({ raw: msg('ham 2') });
    const [, junked3] = store.move(inbox.id, [third], 'Junk').pairs[0]!;
    store.copy(junk.id, [junked3], 'Archive');
    off();
    expect(events).toEqual([
      'recorded Junk',
      'recorded Junk',
      'withdrawn Junk',
      'recorded Junk',
      'withdrawn Junk',
    ]);
    expect(store.complaintCandidates()).toHaveLength(1);
  });

  test('change notifications reach subscribers', async () => {
    const seen: string[] = [];
    const off = store.subscribe((c) => seen.push(c.kind));
    const { uid } = await store.deliver({ raw: msg('n') });
    const box = store.mailbox('INBOX');
    store.setFlags(box.id, [uid], 'add', ['\\Seen']);
    store.move(box.id, [uid], 'Archive');
    off();
    expect(seen).toEqual(['exists', 'flags', 'exists', 'expunge']);
  });
});

describe('pure decisions', () => {
  test('complaintAction: Junk and $Junk record; only "not spam" withdraws; Trash and deletion keep', () => {
    const arrived = (into: 'junk' | 'trash' | 'normal', flags: string[] = []) =>
      ({ kind: 'arrived', into, flags }) as const;
    const flags = (where: 'junk' | 'trash' | 'normal', added: string[], removed: string[] = []) =>
      ({ kind: 'flags', in: where, added, removed }) as const;
    expect(complaintAction(arrived('junk'), false)).toBe('record');
    expect(complaintAction(arrived('junk', ['$NotJunk']), false)).toBe('record');
    expect(complaintAction(arrived('junk'), true)).toBe('keep');
    expect(complaintAction(arrived('normal'), false)).toBe('keep');
    expect(complaintAction(flags('normal', ['$junk']), false)).toBe('record');
    // Out of Junk into a normal mailbox: "this was not spam".
    expect(complaintAction(arrived('normal'), true)).toBe('withdraw');
    expect(complaintAction(arrived('normal', ['\\Seen']), true)).toBe('withdraw');
    // Still flagged $Junk (archived spam): not a withdrawal.
    expect(complaintAction(arrived('normal', ['$Junk']), true)).toBe('keep');
    // Thunderbird's delete in Junk moves to Trash: the complaint stands.
    expect(complaintAction(arrived('trash'), true)).toBe('keep');
    expect(complaintAction(arrived('trash', ['$Junk']), true)).toBe('keep');
    expect(complaintAction(flags('trash', ['\\Deleted']), true)).toBe('keep');
    expect(complaintAction(flags('junk', ['\\Deleted']), true)).toBe('keep');
    // $NotJunk anywhere withdraws; $Junk cleared withdraws only outside Junk and Trash.
    expect(complaintAction(flags('junk', ['$NotJunk'], ['$Junk']), true)).toBe('withdraw');
    expect(complaintAction(flags('normal', [], ['$Junk']), true)).toBe('withdraw');
    expect(complaintAction(flags('junk', [], ['$Junk']), true)).toBe('keep');
    expect(complaintAction(flags('trash', [], ['$Junk']), true)).toBe('keep');
    expect(complaintAction(flags('normal', ['\\Seen']), true)).toBe('keep');
  });

  test('applyFlags and toCrlf', () => {
    expect(applyFlags(['\\Seen'], 'add', ['\\seen', '$A'])).toEqual(['\\Seen', '$A']);
    expect(applyFlags(['\\Seen', '$A'], 'remove', ['$a'])).toEqual(['\\Seen']);
    expect(applyFlags(['x'], 'set', ['\\Recent', 'y'])).toEqual(['y']);
    expect(toCrlf(Buffer.from('a\nb\r\nc\n')).toString()).toBe('a\r\nb\r\nc\r\n');
  });
});

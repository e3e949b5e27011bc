import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { BlobStore } from '../../store/blobs.ts';
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

  test('renaming INBOX moves its messages and leaves INBOX empty', async () => {
    await store.deliver({ raw: msg('x') });
    store.renameMailbox('INBOX', 'Old');
    expect(store.status('INBOX').messages).toBe(0);
    expect(store.status('Old').messages).toBe(1);
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
  test('complaintAction', () => {
    expect(complaintAction([{ inJunk: true, flags: [] }], false)).toBe('record');
    expect(complaintAction([{ inJunk: false, flags: ['$junk'] }], false)).toBe('record');
    expect(complaintAction([{ inJunk: true, flags: [] }], true)).toBe('keep');
    expect(complaintAction([{ inJunk: false, flags: [] }], true)).toBe('withdraw');
    // Deleting the spam is not "this was not spam".
    expect(complaintAction([], true)).toBe('keep');
  });

  test('applyFlags and toCrlf', () => {
    expect(applyFlags(['\\Seen'], 'add', ['\\seen', '$A'])).toEqual(['\\Seen', '$A']);
    expect(applyFlags(['\\Seen', '$A'], 'remove', ['$a'])).toEqual(['\\Seen']);
    expect(applyFlags(['x'], 'set', ['\\Recent', 'y'])).toEqual(['y']);
    expect(toCrlf(Buffer.from('a\nb\r\nc\n')).toString()).toBe('a\r\nb\r\nc\r\n');
  });
});

import type { Statement } from 'better-sqlite3';
import type { AgentId } from '../../common/ids.ts';
import { migrate, type Db } from '../../store/db.ts';
import { groupCommitOf } from '../../store/group-commit.ts';
import type { SignedChange, VersionVector } from './change.ts';
import type { Register, Registers } from './model.ts';

/** The sync module's tables (docs/protocol.md "Sync"; migrated with store/db.ts migrate). */
export const SYNC_MIGRATIONS = [
  `CREATE TABLE sync_log (
     author TEXT NOT NULL,
     seq INTEGER NOT NULL,
     body TEXT NOT NULL,
     sig TEXT NOT NULL,
     PRIMARY KEY (author, seq)
   ) WITHOUT ROWID;
   CREATE TABLE sync_registers (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL,
     wall INTEGER NOT NULL,
     counter INTEGER NOT NULL,
     author TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE sync_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE sync_entries (
     eid TEXT PRIMARY KEY,
     mailbox_id INTEGER NOT NULL,
     uid INTEGER NOT NULL,
     hash TEXT NOT NULL,
     flags TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE UNIQUE INDEX sync_entries_local ON sync_entries(mailbox_id, uid);
   CREATE INDEX sync_entries_hash ON sync_entries(hash);
   CREATE TABLE sync_boxes (
     fid TEXT PRIMARY KEY,
     mailbox_id INTEGER NOT NULL,
     name TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE sync_refused (
     id INTEGER PRIMARY KEY,
     author TEXT NOT NULL,
     seq INTEGER,
     reason TEXT NOT NULL,
     via TEXT NOT NULL,
     at INTEGER NOT NULL
   );`,
  // r23: the end-to-end ciphertext of each delivered message, so siblings get the same bytes.
  `CREATE TABLE sync_sealed (
     message_id TEXT PRIMARY KEY,
     sealed BLOB NOT NULL,
     at INTEGER NOT NULL
   ) WITHOUT ROWID;`,
];

/** A local IMAP copy of an entry: where it is in this gateway's mailbox store and what it last had. */
export interface LocalEntry {
  eid: string;
  mailboxId: number;
  uid: number;
  hash: string;
  /** The flags this agent last saw (or made) on the local copy, sorted. */
  flags: string[];
}

/** A folder's local mailbox. */
export interface LocalBox {
  fid: string;
  mailboxId: number;
  /** The mailbox's name when this agent last looked. */
  name: string;
}

/**
 * The durable sync state in the node's SQLite database: the change logs of every sibling (what
 * is offered to others), the registers (the merged state), and how entries and folders map to
 * this gateway's mailboxes and UIDs (UIDs are per gateway; sync never touches UIDVALIDITY).
 */
export class SyncStore implements Registers {
  private q!: Record<string, Statement>;

  constructor(private readonly db: Db) {}

  start(): void {
    migrate(this.db, 'sync', SYNC_MIGRATIONS);
    const db = this.db;
    this.q = {
      getReg: db.prepare('SELECT value, wall, counter, author FROM sync_registers WHERE key = ?'),
      putReg: db.prepare(
        'INSERT INTO sync_registers (key, value, wall, counter, author) VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, wall = excluded.wall, counter = excluded.counter, author = excluded.author',
      ),
      scan: db.prepare(
        'SELECT key, value, wall, counter, author FROM sync_registers WHERE key >= ? AND key < ? ORDER BY key',
      ),
      insertLog: db.prepare('INSERT INTO sync_log (author, seq, body, sig) VALUES (?, ?, ?, ?)'),
      logBody: db.prepare('SELECT body FROM sync_log WHERE author = ? AND seq = ?'),
      logFrom: db.prepare(
        'SELECT body, sig FROM sync_log WHERE author = ? AND seq >= ? ORDER BY seq LIMIT ?',
      ),
      vv: db.prepare('SELECT author, max(seq) AS seq FROM sync_log GROUP BY author'),
      logCount: db.prepare('SELECT count(*) AS n FROM sync_log'),
      entryCount: db.prepare('SELECT count(*) AS n FROM sync_entries'),
      getMeta: db.prepare('SELECT value FROM sync_meta WHERE key = ?'),
      setMeta: db.prepare(
        'INSERT INTO sync_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
      entry: db.prepare('SELECT * FROM sync_entries WHERE eid = ?'),
      entryAt: db.prepare('SELECT * FROM sync_entries WHERE mailbox_id = ? AND uid = ?'),
      entriesIn: db.prepare('SELECT * FROM sync_entries WHERE mailbox_id = ?'),
      entryByHash: db.prepare('SELECT * FROM sync_entries WHERE hash = ? LIMIT 1'),
      putEntry: db.prepare(
        'INSERT OR REPLACE INTO sync_entries (eid, mailbox_id, uid, hash, flags) VALUES (?, ?, ?, ?, ?)',
      ),
      dropEntry: db.prepare('DELETE FROM sync_entries WHERE eid = ?'),
      boxes: db.prepare('SELECT * FROM sync_boxes'),
      putBox: db.prepare('INSERT OR REPLACE INTO sync_boxes (fid, mailbox_id, name) VALUES (?, ?, ?)'),
      dropBox: db.prepare('DELETE FROM sync_boxes WHERE fid = ?'),
      refuse: db.prepare('INSERT INTO sync_refused (author, seq, reason, via, at) VALUES (?, ?, ?, ?, ?)'),
      refusals: db.prepare('SELECT author, seq, reason, via, at FROM sync_refused ORDER BY id'),
      putSealed: db.prepare('INSERT OR IGNORE INTO sync_sealed (message_id, sealed, at) VALUES (?, ?, ?)'),
      getSealed: db.prepare('SELECT sealed FROM sync_sealed WHERE message_id = ?'),
      sealedIds: db.prepare('SELECT message_id FROM sync_sealed ORDER BY at'),
    };
  }

  /** Runs `fn` in one transaction (a change's log row and its registers commit together). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  // ---- registers ---------------------------------------------------------------------------

  get(key: string): Register | undefined {
    const r = this.q.getReg.get(key) as
      { value: string; wall: number; counter: number; author: string } | undefined;
    return r && { v: JSON.parse(r.value), t: { w: r.wall, c: r.counter, a: r.author as AgentId } };
  }

  put(key: string, register: Register): void {
    this.q.putReg.run(key, JSON.stringify(register.v), register.t.w, register.t.c, register.t.a);
  }

  *scan(prefix: string): Iterable<[string, Register]> {
    const rows = this.q.scan.all(prefix, prefix + '\uffff') as {
      key: string;
      value: string;
      wall: number;
      counter: number;
      author: string;
    }[];
    for (const r of rows)
      yield [r.key, { v: JSON.parse(r.value), t: { w: r.wall, c: r.counter, a: r.author as AgentId } }];
  }

  // ---- logs --------------------------------------------------------------------------------

  appendLog(author: AgentId, seq: number, change: SignedChange): void {
    this.q.insertLog.run(author, seq, change.b, change.g);
  }

  storedBody(author: string, seq: number): string | undefined {
    return (this.q.logBody.get(author, seq) as { body: string } | undefined)?.body;
  }

  /** Up to `limit` changes of one author from `seq` on, in order. */
  changesFrom(author: string, seq: number, limit: number): SignedChange[] {
    return (this.q.logFrom.all(author, seq, limit) as { body: string; sig: string }[]).map((r) => ({
      b: r.body,
      g: r.sig,
    }));
  }

  versionVector(): VersionVector {
    const out: VersionVector = {};
    for (const r of this.q.vv.all() as { author: string; seq: number }[]) out[r.author] = r.seq;
    return out;
  }

  changeCount(): number {
    return (this.q.logCount.get() as { n: number }).n;
  }

  meta(key: string): string | undefined {
    return (this.q.getMeta.get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.q.setMeta.run(key, value);
  }

  // ---- local mapping -----------------------------------------------------------------------

  entry(eid: string): LocalEntry | undefined {
    return toEntry(this.q.entry.get(eid));
  }

  entryAt(mailboxId: number, uid: number): LocalEntry | undefined {
    return toEntry(this.q.entryAt.get(mailboxId, uid));
  }

  entriesIn(mailboxId: number): LocalEntry[] {
    return (this.q.entriesIn.all(mailboxId) as unknown[]).map((r) => toEntry(r)!);
  }

  entryWithHash(hash: string): LocalEntry | undefined {
    return toEntry(this.q.entryByHash.get(hash));
  }

  putEntry(e: LocalEntry): void {
    this.q.putEntry.run(e.eid, e.mailboxId, e.uid, e.hash, e.flags.join(' '));
  }

  dropEntry(eid: string): void {
    this.q.dropEntry.run(eid);
  }

  boxes(): LocalBox[] {
    return (this.q.boxes.all() as { fid: string; mailbox_id: number; name: string }[]).map((r) => ({
      fid: r.fid,
      mailboxId: r.mailbox_id,
      name: r.name,
    }));
  }

  putBox(b: LocalBox): void {
    this.q.putBox.run(b.fid, b.mailboxId, b.name);
  }

  dropBox(fid: string): void {
    this.q.dropBox.run(fid);
  }

  /** Records a refused change (nothing is applied; the author still holds it). */
  /** Keeps a delivered message's sealed manifest as it arrived (docs/protocol.md 16.3, kind 5). */
  putSealed(messageId: string, sealed: Buffer, at: number): void {
    this.q.putSealed.run(messageId, sealed, at);
  }

  /** putSealed in the connection's group commit, riding with the next write's commit (runSoon). */
  putSealedSoon(messageId: string, sealed: Buffer, at: number): Promise<void> {
    return groupCommitOf(this.db).runSoon(() => this.putSealed(messageId, sealed, at));
  }

  /** The sealed manifest of a delivered message, if it was kept. */
  sealed(messageId: string): Buffer | undefined {
    const row = this.q.getSealed.get(messageId) as { sealed: Buffer } | undefined;
    return row?.sealed;
  }

  /** Entries with a local copy here. */
  entryCount(): number {
    return (this.q.entryCount.get() as { n: number }).n;
  }

  /** Ids of the messages whose sealed form is kept (tests, `kith` status). */
  sealedIds(): string[] {
    return (this.q.sealedIds.all() as { message_id: string }[]).map((r) => r.message_id);
  }

  recordRefusal(author: string, seq: number | undefined, reason: string, via: string, at: number): void {
    this.q.refuse.run(author, seq ?? null, reason, via, at);
  }

  refusals(): { author: string; seq: number | null; reason: string; via: string; at: number }[] {
    return this.q.refusals.all() as {
      author: string;
      seq: number | null;
      reason: string;
      via: string;
      at: number;
    }[];
  }
}

function toEntry(row: unknown): LocalEntry | undefined {
  const r = row as { eid: string; mailbox_id: number; uid: number; hash: string; flags: string } | undefined;
  if (!r) return undefined;
  return {
    eid: r.eid,
    mailboxId: r.mailbox_id,
    uid: r.uid,
    hash: r.hash,
    flags: r.flags === '' ? [] : r.flags.split(' '),
  };
}

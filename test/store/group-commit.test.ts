import { afterEach, describe, expect, test } from '@jest/globals';
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Db } from '../../store/db.ts';
import { GroupCommit, Rider } from '../../store/group-commit.ts';
import { heldSync } from '../helpers/held-sync.ts';

describe('group commit', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function open(): Promise<{ db: Db; file: string }> {
    const dir = await mkdtemp(join(tmpdir(), 'kith-group-commit-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'kith.db');
    const db = openDatabase(file);
    cleanup.push(() => void (db.open && db.close()));
    db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');
    return { db, file };
  }

  /** What another connection sees: only what is committed. */
  function committed(file: string): string[] {
    const other = new Database(file, { readonly: true });
    try {
      return (other.prepare('SELECT k FROM t ORDER BY k').all() as { k: string }[]).map((r) => r.k);
    } finally {
      other.close();
    }
  }

  test('writes waiting at the same moment share one commit, and each resolves once it is committed', async () => {
    const { db, file } = await open();
    const group = new GroupCommit(db);
    const insert = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
    const seenAtResolve: string[][] = [];
    const writes = ['a', 'b', 'c'].map((k, i) =>
      group
        .run(() => insert.run(k, i).changes)
        .then((changes) => {
          seenAtResolve.push(committed(file));
          return changes;
        }),
    );
    // Nothing is written before the flush: a caller cannot answer before its commit.
    expect(committed(file)).toEqual([]);
    expect(await Promise.all(writes)).toEqual([1, 1, 1]);
    expect(group.stats).toEqual({ commits: 1, writes: 3, syncs: 1 });
    for (const seen of seenAtResolve) expect(seen).toEqual(['a', 'b', 'c']);

    // A later write gets a commit of its own.
    await group.run(() => insert.run('d', 4));
    expect(group.stats).toEqual({ commits: 2, writes: 4, syncs: 2 });
    expect(committed(file)).toEqual(['a', 'b', 'c', 'd']);
  });

  test('a write that throws is rolled back alone; the others in its commit are kept', async () => {
    const { db, file } = await open();
    const group = new GroupCommit(db);
    const insert = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
    insert.run('taken', 0);
    const ok1 = group.run(() => insert.run('x', 1));
    // Two statements, the second fails: neither may be kept.
    const bad = group.run(() => {
      insert.run('half', 2);
      insert.run('taken', 3);
    });
    const ok2 = group.run(() => insert.run('y', 4));
    // By message, not toThrow: SqliteError comes from another realm once another test file in
    // the same Jest worker loaded better-sqlite3 first, and toThrow then sees no Error at all.
    await expect(bad).rejects.toMatchObject({ message: expect.stringMatching(/UNIQUE/) });
    await ok1;
    await ok2;
    expect(group.stats.commits).toBe(1);
    expect(committed(file)).toEqual(['taken', 'x', 'y']);
  });

  test('the fsync is not made on the event loop: committed at NORMAL, resolved only after the WAL is synced', async () => {
    const { db, file } = await open();
    const held = heldSync();
    const group = new GroupCommit(db, held.sync);
    const insert = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
    let resolved = false;
    const write = group
      .run(() => {
        insert.run('a', 1);
        return db.pragma('synchronous', { simple: true }); // 1: NORMAL, no fsync in this commit
      })
      .then((level) => {
        resolved = true;
        return level;
      });
    const wal = await held.next();
    expect(wal.path).toBe(`${file}-wal`);
    expect(committed(file)).toEqual(['a']); // committed (visible to others) ...
    await new Promise((r) => setImmediate(r));
    expect(resolved).toBe(false); // ... but its writer waits for the sync
    wal.done();
    const dir = await held.next(); // the WAL file's directory entry, once
    expect(dir.path).toBe(join(file, '..'));
    expect(resolved).toBe(false);
    dir.done();
    expect(await write).toBe(1);
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL again for other writers
  });

  test('a commit made while a sync runs waits for the next sync, which covers every commit before it', async () => {
    const { db } = await open();
    const held = heldSync();
    const group = new GroupCommit(db, held.sync);
    const insert = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
    const first = group.run(() => insert.run('a', 1));
    const sync1 = await held.next();
    const done: string[] = [];
    const second = group.run(() => insert.run('b', 2)).then(() => done.push('b'));
    const third = group.run(() => insert.run('c', 3)).then(() => done.push('c'));
    while (group.stats.commits < 2) await new Promise((r) => setImmediate(r));
    expect(held.calls).toHaveLength(0); // one sync at a time
    sync1.done();
    (await held.next()).done(); // the directory
    await first;
    const sync2 = await held.next();
    expect(done).toEqual([]); // committed before sync 1 ended, but not covered by it
    sync2.done();
    await Promise.all([second, third]);
    expect(group.stats).toMatchObject({ commits: 2, writes: 3, syncs: 2 });
  });

  test('a sync that fails rejects the writes of its commits with ERR_STORE_SYNC', async () => {
    const { db } = await open();
    const held = heldSync();
    const group = new GroupCommit(db, held.sync);
    const write = group.run(() => db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run('a', 1));
    (await held.next()).done(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }));
    await expect(write).rejects.toMatchObject({ code: 'ERR_STORE_SYNC' });
  });

  test('writes still waiting when the database closes are refused with ERR_STORE_CLOSED, not lost silently', async () => {
    const { db } = await open();
    const group = new GroupCommit(db);
    const write = group.run(() => db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run('late', 1));
    db.close();
    await expect(write).rejects.toMatchObject({ code: 'ERR_STORE_CLOSED' });
  });
  test('a runSoon() write starts no commit of its own: it rides with the next run(), resolved only by that commit', async () => {
    const { db, file } = await open();
    const group = new GroupCommit(db);
    const insert = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
    let soonDone = false;
    // A bound far beyond the test: only the run() below can commit it.
    const soon = group.runSoon(() => insert.run('hop', 1), 10 * 60_000).then(() => (soonDone = true));
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(group.stats.commits).toBe(0);
    expect(soonDone).toBe(false);
    await group.run(() => insert.run('mail', 2));
    await soon;
    expect(group.stats).toEqual({ commits: 1, writes: 2, syncs: 1 });
    expect(committed(file)).toEqual(['hop', 'mail']);
  });

  test('a runSoon() write alone is committed after its bound', async () => {
    const { db, file } = await open();
    const group = new GroupCommit(db);
    await group.runSoon(() => db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run('alone', 1), 5);
    expect(group.stats).toEqual({ commits: 1, writes: 1, syncs: 1 });
    expect(committed(file)).toEqual(['alone']);
  });

  test('a Rider is taken once, and only for a transaction on its own connection', async () => {
    const { db, file } = await open();
    const other = (await open()).db;
    const rider = new Rider(db, () => db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run('mark', 1));
    expect(rider.take(other)).toBeUndefined();
    expect(rider.taken).toBe(false);
    const write = rider.take(db)!;
    expect(rider.taken).toBe(true);
    expect(rider.take(db)).toBeUndefined();
    await new GroupCommit(db).run(write);
    expect(committed(file)).toEqual(['mark']);
  });
});

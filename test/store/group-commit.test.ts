import { afterEach, describe, expect, test } from '@jest/globals';
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Db } from '../../store/db.ts';
import { GroupCommit } from '../../store/group-commit.ts';

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
    expect(group.stats).toEqual({ commits: 1, writes: 3 });
    for (const seen of seenAtResolve) expect(seen).toEqual(['a', 'b', 'c']);

    // A later write gets a commit of its own.
    await group.run(() => insert.run('d', 4));
    expect(group.stats).toEqual({ commits: 2, writes: 4 });
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

  test('writes still waiting when the database closes are refused with ERR_STORE_CLOSED, not lost silently', async () => {
    const { db } = await open();
    const group = new GroupCommit(db);
    const write = group.run(() => db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run('late', 1));
    db.close();
    await expect(write).rejects.toMatchObject({ code: 'ERR_STORE_CLOSED' });
  });
});

import Database from 'better-sqlite3';
import { KithError } from '../common/errors.ts';

export type Db = Database.Database;

/**
 * A function that compiles each SQL text once per connection and hands back the same statement
 * after: better-sqlite3's prepare() on every call was 3–4.5% of a node's busy time in the CPU
 * profiles of bench/RESULTS.md 10 and 10.6.
 */
export function statementCache(db: Db): (sql: string) => Database.Statement {
  const statements = new Map<string, Database.Statement>();
  return (sql) => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
}

/** One schema step. Steps of a module run in order, once, each in its own transaction. */
export type Migration = string | ((db: Db) => void);

/**
 * Opens (creating if needed) the node's SQLite database in WAL mode.
 * synchronous=FULL: SMTP answers 250 only after a commit, so a commit must survive power loss.
 */
export function openDatabase(file: string): Db {
  let db: Db;
  try {
    db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (module TEXT PRIMARY KEY, version INTEGER NOT NULL)',
    );
  } catch (err) {
    throw new KithError(
      'ERR_STORE_OPEN',
      `cannot open the database ${file}: ${(err as Error).message}`,
      'check that the data directory is yours and not corrupted (restore it from a backup if it is)',
      { cause: err },
    );
  }
  return db;
}

/**
 * Brings one module's tables up to date. Each module (identity, trust, mailbox, ...) owns its own
 * numbered list, so modules evolve their schemas independently. Returns the version reached.
 */
export function migrate(db: Db, module: string, migrations: readonly Migration[]): number {
  const row = db.prepare('SELECT version FROM schema_migrations WHERE module = ?').get(module) as
    { version: number } | undefined;
  const current = row?.version ?? 0;
  if (current > migrations.length) {
    throw new KithError(
      'ERR_STORE_TOO_NEW',
      `the ${module} tables are at version ${current}, newer than this Kith knows (${migrations.length})`,
      'upgrade Kith, or use a data directory made by this version',
    );
  }
  for (let version = current + 1; version <= migrations.length; version++) {
    const step = migrations[version - 1];
    db.transaction(() => {
      if (typeof step === 'string') db.exec(step);
      else step(db);
      db.prepare(
        'INSERT INTO schema_migrations (module, version) VALUES (?, ?) ON CONFLICT(module) DO UPDATE SET version = excluded.version',
      ).run(module, version);
    })();
  }
  return migrations.length;
}

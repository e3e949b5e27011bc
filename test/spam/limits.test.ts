import { describe, expect, test } from '@jest/globals';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { AgentId, Fingerprint, MessageId } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { groupCommitOf } from '../../store/group-commit.ts';
import { DEFAULT_SPAM_POLICY } from '../../agent/spam/decisions.ts';
import { SpamLimits } from '../../agent/spam/limits.ts';
import { tempDir } from '../helpers/tmp.ts';

const HOUR = 3_600_000;
const policy = { ...DEFAULT_SPAM_POLICY, firstContactsPerDay: 2, forwardFloorPerHour: 3 };
const stranger = 'A'.repeat(40) as Fingerprint;
const friend = 'B'.repeat(40) as Fingerprint;
const neighbour = '12D3KooWneighbour' as AgentId;
const id = (n: number) => n.toString(16).padStart(32, '0') as MessageId;

/** The counters live in a real SQLite file: a limit reached before a restart holds after it. */
describe('spam limits keep their counters in SQLite', () => {
  const dir = tempDir('kith-spam-limits-');
  let db: Db | undefined;
  let clock = 1_000_000_000_000;
  // A restart as the node makes one: what waits in the group commit is committed before close.
  const open = () => {
    if (db) groupCommitOf(db).flush();
    db?.close();
    db = openDatabase(join(dir.path, 'node.db'));
    return new SpamLimits({
      db,
      policy,
      logger: silentLogger(),
      isKnown: (e) => e === friend,
      trafficOf: () => 0,
      now: () => clock,
    });
  };

  test('first contacts per sender per day, a re-sent copy taken again, a contact never limited; across a restart', () => {
    let limits = open();
    expect(limits.admit(id(1), stranger, false)).toBeUndefined();
    expect(limits.admit(id(2), stranger, false)).toBeUndefined();
    limits = open(); // a restart: the node opens the same file again
    expect(limits.admit(id(3), stranger, false)).toMatchObject({ code: 'first_contact_limit' });
    expect(limits.admit(id(2), stranger, false)).toBeUndefined(); // the same message re-sent
    expect(limits.admit(id(4), friend, true)).toBeUndefined();
    expect(limits.admit(id(5), friend, false)).toBeUndefined(); // friend has written no first contact yet
    clock += 24 * HOUR + 1;
    expect(limits.admit(id(6), stranger, false)).toBeUndefined(); // a day later
  });

  test('the forwarding allowance: the floor per hour from the first packet, across a restart', () => {
    let limits = open();
    for (let i = 0; i < 3; i++) expect(limits.forward(neighbour, 2000)).toBeUndefined();
    limits = open();
    expect(limits.forwardedThisHour(neighbour)).toBe(3);
    expect(limits.forward(neighbour, 2000)).toMatchObject({ code: 'over_allowance' });
    // A full chunk of a large message is not counted (its manifest was).
    expect(limits.forward(neighbour, 256 * 1024)).toBeUndefined();
    clock += HOUR;
    expect(limits.forward(neighbour, 2000)).toBeUndefined(); // its next hour
    expect(limits.forwardedThisHour(neighbour)).toBe(1);
  });

  test('a counted packet is committed with the next group commit, before a write queued after it', async () => {
    const limits = open();
    const other = '12D3KooWother' as AgentId;
    expect(limits.forward(other, 2000)).toBeUndefined();
    expect(limits.forward(other, 2000)).toBeUndefined();
    // What the relay does next: its hop record in the same group commit, handed on once it returns.
    const seen = await groupCommitOf(db!).run(() => {
      // A second connection (another process after a crash) sees only what is committed.
      const reader = new Database(join(dir.path, 'node.db'), { readonly: true });
      try {
        return reader.prepare('SELECT used FROM spam_allowance WHERE agent = ?').get(other);
      } finally {
        reader.close();
      }
    });
    expect(seen).toBeUndefined(); // inside the commit: not visible to others yet
    const reader = new Database(join(dir.path, 'node.db'), { readonly: true });
    expect(reader.prepare('SELECT used FROM spam_allowance WHERE agent = ?').get(other)).toEqual({ used: 2 });
    reader.close();
    db?.close();
    dir.remove();
  });
});

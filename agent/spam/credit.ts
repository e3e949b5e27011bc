import type { AgentId } from '../../common/ids.ts';
import { migrate, type Db } from '../../store/db.ts';
import { addDecayed, decayedValue, firstContactHeld, type Decayed, type SpamPolicy } from './decisions.ts';

// The credit's own tables (store/db.ts: each module owns its numbered migrations).
const MIGRATIONS = [
  `CREATE TABLE spam_credit (
     link TEXT PRIMARY KEY,            -- the first contact's packet: link id handed on (at the recipient: taken)
     neighbour TEXT NOT NULL,          -- the neighbour that handed it to us
     at INTEGER NOT NULL,              -- when
     verdict TEXT);                    -- NULL unjudged, 'good' (read and kept), 'bad' (complained about)
   CREATE INDEX spam_credit_neighbour ON spam_credit(neighbour, verdict, at);
   CREATE TABLE spam_credit_good (
     neighbour TEXT PRIMARY KEY,
     value REAL NOT NULL,              -- decayed good verdicts on its first contacts
     at INTEGER NOT NULL);`,
];

/**
 * The first-contact credit of one agent (docs/protocol.md 15.7), durably in SQLite: the first
 * contacts each neighbour handed us whose recipient's verdict has not come back, and the decayed
 * good verdicts that earn it more. The decisions are decisions.ts's (firstContactHeld,
 * firstContactCredit), the ones bench/spam applies at every hop of the simulation.
 */
export class FirstContactCredit {
  private readonly q;

  constructor(
    db: Db,
    private readonly policy: SpamPolicy,
    private readonly now: () => number,
  ) {
    migrate(db, 'spam-credit', MIGRATIONS);
    this.q = {
      unjudged: db.prepare(
        'SELECT count(*) AS n FROM spam_credit WHERE neighbour = ? AND verdict IS NULL AND at > ?',
      ),
      put: db.prepare(
        'INSERT INTO spam_credit (link, neighbour, at, verdict) VALUES (?, ?, ?, NULL) ON CONFLICT DO NOTHING',
      ),
      row: db.prepare('SELECT neighbour, at, verdict FROM spam_credit WHERE link = ?'),
      setVerdict: db.prepare('UPDATE spam_credit SET verdict = ? WHERE link = ?'),
      good: db.prepare('SELECT value, at FROM spam_credit_good WHERE neighbour = ?'),
      putGood: db.prepare(
        `INSERT INTO spam_credit_good (neighbour, value, at) VALUES (?, ?, ?)
         ON CONFLICT(neighbour) DO UPDATE SET value = excluded.value, at = excluded.at`,
      ),
      prune: db.prepare('DELETE FROM spam_credit WHERE at < ?'),
    };
  }

  /** Decayed good verdicts on this neighbour's first contacts. */
  good(neighbour: AgentId): number {
    const d = this.q.good.get(neighbour) as Decayed | undefined;
    return d ? decayedValue(d, this.now(), this.policy.halfLifeMs) : 0;
  }

  /** First contacts from this neighbour still awaiting a verdict (not older than creditVerdictMs). */
  unjudged(neighbour: AgentId): number {
    return (this.q.unjudged.get(neighbour, this.now() - this.policy.creditVerdictMs) as { n: number }).n;
  }

  /** Is one more first contact from this neighbour held (its credit all in unjudged first contacts)? */
  held(neighbour: AgentId): boolean {
    return firstContactHeld(this.unjudged(neighbour), this.good(neighbour), this.policy);
  }

  /** A first contact from `neighbour` was handed on (or taken) as packet `link`. */
  record(neighbour: AgentId, link: string): void {
    this.q.put.run(link, neighbour, this.now());
  }

  /** True if packet `link` was a first contact (flagged) this agent handed on or took. */
  isFirstContact(link: string | null | undefined): boolean {
    return !!link && this.q.row.get(link) !== undefined;
  }

  /**
   * The recipient's verdict on first contact `link` came back: releases its unit of credit; a good
   * one adds a good verdict. A complaint after a good verdict (read, then moved to Junk) takes the
   * good verdict back. Returns false when there was nothing to release (not a first contact here,
   * or this verdict was given already: a replay).
   */
  verdict(link: string, good: boolean): boolean {
    const row = this.q.row.get(link) as { neighbour: AgentId; verdict: string | null } | undefined;
    if (!row) return false;
    const want = good ? 'good' : 'bad';
    if (row.verdict === want || (row.verdict === 'bad' && good)) return false;
    this.q.setVerdict.run(want, link);
    const by = good ? 1 : row.verdict === 'good' ? -1 : 0;
    if (by !== 0) {
      const d = this.q.good.get(row.neighbour) as Decayed | undefined;
      const next = addDecayed(d, by, this.now(), this.policy.halfLifeMs);
      this.q.putGood.run(row.neighbour, Math.max(0, next.value), next.at);
    }
    return true;
  }

  /** Forgets first contacts older than `olderThanMs` (hop memory is gone for them). */
  prune(olderThanMs: number): void {
    this.q.prune.run(this.now() - olderThanMs);
  }
}

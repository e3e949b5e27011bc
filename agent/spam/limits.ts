import type { AgentId, Fingerprint, MessageId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import { migrate, type Db } from '../../store/db.ts';
import { groupCommitOf } from '../../store/group-commit.ts';
import {
  admitMessage,
  countsAgainstAllowance,
  forwardDecision,
  invitationDecision,
  type Refusal,
  type SpamPolicy,
} from './decisions.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// The limits' own tables (store/db.ts: each module owns its numbered migrations).
const MIGRATIONS = [
  `CREATE TABLE spam_first_contact (
     message_id TEXT PRIMARY KEY,      -- a re-sent copy of a message taken is not counted again
     sender TEXT NOT NULL,             -- the entity it claims to come from
     at INTEGER NOT NULL);
   CREATE INDEX spam_first_contact_sender ON spam_first_contact(sender, at);
   CREATE TABLE spam_allowance (
     agent TEXT PRIMARY KEY,           -- the neighbour handing packets on
     hour INTEGER NOT NULL,            -- when its current hour began (ms): the first packet in it
     used INTEGER NOT NULL);`,
];

export interface SpamLimitsDeps {
  db: Db;
  policy: SpamPolicy;
  logger: Logger;
  /** True if this entity is a contact or trusted neighbour here and not revoked (or is us). */
  isKnown(entity: Fingerprint): boolean;
  /** The decayed packets a neighbour handed on (spam control's traffic count). */
  trafficOf(agent: AgentId): number;
  now?: () => number;
}

/**
 * The rate limits of spam control in the node (docs/protocol.md 15.6): first contacts per sender
 * per day at the recipient, packets per hour per neighbour at every hop, and the user's own
 * invitation quota. The decisions are the pure functions of decisions.ts (bench/spam calls the
 * same ones); this class only keeps their counters, durably, in SQLite. The callers count the
 * refusals (`rejected_<code>`) where the engine counts every other one.
 */
export class SpamLimits {
  private readonly q;
  private readonly now: () => number;
  /** Each neighbour's current hour as counted here; the rows are written behind it (forward()). */
  private readonly allowances = new Map<AgentId, { hour: number; used: number }>();
  /** Neighbours whose allowance row waits in the group commit (one write each, the latest count). */
  private readonly unwritten = new Set<AgentId>();

  constructor(private readonly deps: SpamLimitsDeps) {
    migrate(deps.db, 'spam-limits', MIGRATIONS);
    this.now = deps.now ?? Date.now;
    const db = deps.db;
    this.q = {
      firstContact: db.prepare('SELECT 1 FROM spam_first_contact WHERE message_id = ?'),
      firstToday: db.prepare(
        'SELECT count(*) AS n FROM spam_first_contact WHERE sender = ? AND at > ? AND message_id <> ?',
      ),
      putFirst: db.prepare(
        'INSERT INTO spam_first_contact (message_id, sender, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      pruneFirst: db.prepare('DELETE FROM spam_first_contact WHERE at < ?'),
      allowance: db.prepare('SELECT hour, used FROM spam_allowance WHERE agent = ?'),
      putAllowance: db.prepare(
        `INSERT INTO spam_allowance (agent, hour, used) VALUES (?, ?, ?)
         ON CONFLICT(agent) DO UPDATE SET hour = excluded.hour, used = excluded.used`,
      ),
    };
  }

  /** True if this entity is a contact or trusted neighbour here (or is us). */
  knows(entity: Fingerprint): boolean {
    return this.deps.isKnown(entity);
  }

  private refused(refusal: Refusal, detail: Record<string, unknown>): Refusal {
    this.deps.logger.info({ code: refusal.code, why: refusal.reason, ...detail }, 'refused by a spam limit');
    return refusal;
  }

  /**
   * The recipient's door: may this message (its manifest just opened) be taken? A first contact
   * taken is recorded (durably, by message id); a refusal is counted and returned with its code.
   */
  admit(id: MessageId, sender: Fingerprint, verified: boolean, flagged?: boolean): Refusal | undefined {
    const now = this.now();
    const takenBefore = this.q.firstContact.get(id) !== undefined;
    const facts = {
      known: this.deps.isKnown(sender),
      verified,
      takenBefore,
      firstContactsToday: (this.q.firstToday.get(sender, now - DAY, id) as { n: number }).n,
      flagged,
    };
    const verdict = admitMessage(facts, this.deps.policy);
    if ('code' in verdict) return this.refused(verdict, { id, sender });
    if (verdict.firstContact && !takenBefore) this.q.putFirst.run(id, sender, now);
    return undefined;
  }

  /**
   * Every hop's door: may one more packet from this neighbour be handed on (or taken) this hour?
   * Counts it when it may. The count is kept here and its row goes into the connection's group
   * commit (store/group-commit.ts), queued now, so it is committed with or before the hop record
   * of the same packet, which the relay commits before it hands the packet on (and the recipient
   * before the message shows in the mailbox): a restart still hands out no fresh allowance for
   * any packet that went on. Why not written through: that was one commit, one WAL fsync on the
   * event loop, for every packet at every hop (bench/RESULTS.md 10.6).
   */
  forward(from: AgentId, bytes: number): Refusal | undefined {
    if (!countsAgainstAllowance(bytes, this.deps.policy)) return undefined;
    const now = this.now();
    const row = this.allowanceOf(from);
    // An hour from the first packet in it, not a clock hour: no boundary a sender could time a
    // double burst around, and the same hour wherever the clock's hour turns.
    const current = row !== undefined && now >= row.hour && now - row.hour < HOUR;
    const start = current ? row.hour : now;
    const used = current ? row.used : 0;
    const refusal = forwardDecision(this.deps.trafficOf(from), used, this.deps.policy);
    if (refusal) return this.refused(refusal, { from });
    this.allowances.set(from, { hour: start, used: used + 1 });
    this.writeAllowance(from);
    return undefined;
  }

  private allowanceOf(from: AgentId): { hour: number; used: number } | undefined {
    let row = this.allowances.get(from);
    if (!row) {
      row = this.q.allowance.get(from) as { hour: number; used: number } | undefined;
      if (row) this.allowances.set(from, row);
    }
    return row;
  }

  /** Queues the neighbour's row in the next group commit, unless a write of it is queued already. */
  private writeAllowance(from: AgentId): void {
    if (this.unwritten.has(from)) return; // the queued write takes the count as it is then
    this.unwritten.add(from);
    // runSoon: it rides with the commit of the write that depends on it (a relay's hop record, a
    // recipient's mailbox append), queued after it; no commit of its own at the recipient.
    groupCommitOf(this.deps.db)
      .runSoon(() => {
        this.unwritten.delete(from);
        const row = this.allowances.get(from)!;
        this.q.putAllowance.run(from, row.hour, row.used);
      })
      .catch((err: Error) => {
        // Kept in memory: the next packet from this neighbour writes it again.
        this.unwritten.delete(from);
        this.deps.logger.warn({ from, err: err.message }, 'forwarding allowance not stored');
      });
  }

  /** Packets handed on from a neighbour in its current hour (for `kith status` and tests). */
  forwardedThisHour(from: AgentId): number {
    const row = this.allowanceOf(from);
    const now = this.now();
    return row !== undefined && now >= row.hour && now - row.hour < HOUR ? row.used : 0;
  }

  /**
   * The user's own `kith invite`: refused past the quota for an entity of our age. Counted are the
   * invitations of the last 30 days that were redeemed or are still open (one that expired unused
   * made no link).
   */
  invitation(self: Fingerprint): Refusal | undefined {
    const now = this.now();
    // The trust store's and the identity's tables (read only here, prepared when first asked).
    const db = this.deps.db;
    const issued = (
      db
        .prepare(
          `SELECT count(*) AS n FROM trust_invitation
           WHERE created_at > ? AND (redeemed_at IS NOT NULL OR expires_at > ?)`,
        )
        .get(now - 30 * DAY, now) as { n: number }
    ).n;
    const created =
      (
        db.prepare('SELECT created_at AS at FROM entity WHERE fingerprint = ?').get(self) as
          { at: number } | undefined
      )?.at ?? now;
    const refusal = invitationDecision(issued, now - created, this.deps.policy);
    return refusal && this.refused(refusal, { issued });
  }

  /** Forgets first contacts older than a day (they no longer count). */
  prune(): void {
    this.q.pruneFirst.run(this.now() - DAY);
  }
}

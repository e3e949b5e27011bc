import type { AgentId, Fingerprint, MessageId } from '../../common/ids.ts';
import { migrate, type Db } from '../../store/db.ts';
import { groupCommitOf } from '../../store/group-commit.ts';
import type { Decayed } from './decisions.ts';

// The spam module's own tables (store/db.ts: each module owns its numbered migrations).
const MIGRATIONS = [
  `CREATE TABLE spam_complaint (
     recipient TEXT NOT NULL,          -- hex of the recipient agent's Ed25519 key
     complaint_id TEXT NOT NULL,       -- hex, 16 bytes
     message_id TEXT,                  -- only at the recipient itself
     link_out TEXT,                    -- link id towards the recipient (NULL at the recipient)
     successor TEXT,                   -- the neighbour the complaint came from (NULL at the recipient)
     link_in TEXT,                     -- link id towards the sender (NULL at the sender)
     predecessor TEXT,                 -- the neighbour that handed the packet on (NULL at the sender)
     state TEXT NOT NULL,              -- active | withdrawn
     last_at INTEGER NOT NULL,         -- the newest statement's time: older or equal ones are replays
     counted INTEGER NOT NULL,         -- counted against predecessor (its hop proof verified)
     counted_at INTEGER NOT NULL,
     cleared_at INTEGER,               -- a cut notice (or our own cut-off) cleared it
     cut_id TEXT,
     frame BLOB,                       -- the signed frame as received: evidence
     proof_digest BLOB,                -- the predecessor's hop proof (delivery 7.2), copied
     proof_signature BLOB,
     PRIMARY KEY (recipient, complaint_id));
   CREATE INDEX spam_complaint_predecessor ON spam_complaint(predecessor, state);
   CREATE UNIQUE INDEX spam_complaint_link_out ON spam_complaint(link_out) WHERE link_out IS NOT NULL;
   CREATE TABLE spam_received (
     message_id TEXT PRIMARY KEY,
     neighbour TEXT NOT NULL,
     link TEXT NOT NULL,
     sender TEXT NOT NULL,
     received_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL);
   CREATE INDEX spam_received_expires ON spam_received(expires_at);
   CREATE TABLE spam_neighbour (
     agent TEXT PRIMARY KEY,
     traffic REAL NOT NULL DEFAULT 0,
     traffic_at INTEGER NOT NULL DEFAULT 0,
     cuts REAL NOT NULL DEFAULT 0,
     cuts_at INTEGER NOT NULL DEFAULT 0,
     suspended_at INTEGER,
     revoked_at INTEGER,
     reason TEXT,
     detail TEXT);
   CREATE TABLE spam_cut (
     agent TEXT NOT NULL,
     cut_id TEXT NOT NULL,
     at INTEGER NOT NULL,
     PRIMARY KEY (agent, cut_id));
   CREATE TABLE spam_revocation (
     id INTEGER PRIMARY KEY,
     agent TEXT NOT NULL,              -- the agent revoked
     entity TEXT,                      -- its entity, when known
     by_agent TEXT NOT NULL,           -- who revoked it (this agent, or the neighbour that told us)
     at INTEGER NOT NULL,
     reason TEXT NOT NULL,
     detail TEXT NOT NULL,
     evidence BLOB,                    -- the notice with its signed complaints (15.3)
     verified INTEGER NOT NULL DEFAULT 0);
   CREATE INDEX spam_revocation_entity ON spam_revocation(entity);`,
  // Packets ever handed on by a neighbour, not decayed (the lifetime rule against a slow drip).
  `ALTER TABLE spam_neighbour ADD COLUMN total_traffic REAL NOT NULL DEFAULT 0;`,
  // When the predecessor handed us the packet complained about: a cut notice clears only
  // complaints about packets handed on before the cut (15.3).
  `ALTER TABLE spam_complaint ADD COLUMN packet_at INTEGER;`,
  // A list carries a complaint about a copy it sent on along the post's inbound path as its own
  // complaint (docs/protocol.md 15.8): which recipients' complaints each carried one stands for.
  `CREATE TABLE spam_carried (
     own_complaint_id TEXT NOT NULL,   -- this agent's complaint about the post it received
     origin_recipient TEXT NOT NULL,   -- the recipient of the copy complained about (key hex)
     origin_complaint_id TEXT NOT NULL,
     PRIMARY KEY (origin_recipient, origin_complaint_id));
   CREATE INDEX spam_carried_own ON spam_carried(own_complaint_id);`,
];

/** One complaint as a hop (or the recipient, or the sender) keeps it. */
export interface ComplaintRow {
  recipient: string;
  complaintId: string;
  messageId: MessageId | null;
  linkOut: string | null;
  successor: AgentId | null;
  linkIn: string | null;
  predecessor: AgentId | null;
  state: 'active' | 'withdrawn';
  lastAt: number;
  counted: boolean;
  countedAt: number;
  clearedAt: number | null;
  cutId: string | null;
  frame: Buffer | null;
  proof: { digest: Buffer; signature: Buffer } | null;
  /** When the predecessor handed us the packet (from hop memory; migration 3, null before). */
  packetAt?: number | null;
}

/** Where a received message's manifest came from (the recipient's side; complaints start here). */
export interface ReceivedRow {
  messageId: MessageId;
  neighbour: AgentId;
  link: string;
  sender: Fingerprint;
  receivedAt: number;
  expiresAt: number;
}

/** What a hop keeps about one neighbour. */
export interface NeighbourRow {
  agent: AgentId;
  traffic: Decayed;
  /** Packets ever handed on (migration 2). */
  totalTraffic: number;
  cuts: Decayed;
  suspendedAt: number | null;
  revokedAt: number | null;
  reason: string | null;
  detail: string | null;
}

/** A revocation for spam: our own, or one a neighbour told us about with its evidence. */
export interface RevocationRow {
  id: number;
  agent: AgentId;
  entity: Fingerprint | null;
  byAgent: AgentId;
  at: number;
  reason: string;
  detail: string;
  evidence: Buffer | null;
  verified: number;
}

type Raw = Record<string, unknown>;

function toComplaint(r: Raw): ComplaintRow {
  return {
    recipient: r.recipient as string,
    complaintId: r.complaint_id as string,
    messageId: (r.message_id as MessageId | null) ?? null,
    linkOut: (r.link_out as string | null) ?? null,
    successor: (r.successor as AgentId | null) ?? null,
    linkIn: (r.link_in as string | null) ?? null,
    predecessor: (r.predecessor as AgentId | null) ?? null,
    state: r.state as 'active' | 'withdrawn',
    lastAt: r.last_at as number,
    counted: r.counted === 1,
    countedAt: r.counted_at as number,
    clearedAt: (r.cleared_at as number | null) ?? null,
    cutId: (r.cut_id as string | null) ?? null,
    frame: (r.frame as Buffer | null) ?? null,
    proof:
      r.proof_digest && r.proof_signature
        ? { digest: r.proof_digest as Buffer, signature: r.proof_signature as Buffer }
        : null,
    packetAt: (r.packet_at as number | null) ?? null,
  };
}

function toNeighbour(r: Raw): NeighbourRow {
  return {
    agent: r.agent as AgentId,
    traffic: { value: r.traffic as number, at: r.traffic_at as number },
    totalTraffic: (r.total_traffic as number | null) ?? 0,
    cuts: { value: r.cuts as number, at: r.cuts_at as number },
    suspendedAt: (r.suspended_at as number | null) ?? null,
    revokedAt: (r.revoked_at as number | null) ?? null,
    reason: (r.reason as string | null) ?? null,
    detail: (r.detail as string | null) ?? null,
  };
}

function toRevocation(r: Raw): RevocationRow {
  return {
    id: r.id as number,
    agent: r.agent as AgentId,
    entity: (r.entity as Fingerprint | null) ?? null,
    byAgent: r.by_agent as AgentId,
    at: r.at as number,
    reason: r.reason as string,
    detail: r.detail as string,
    evidence: (r.evidence as Buffer | null) ?? null,
    verified: r.verified as number,
  };
}

/**
 * Durable spam-control state on the node's SQLite database: complaints with their evidence,
 * where received messages came from, per-neighbour counters, cut-offs and revocations. All
 * synchronous (better-sqlite3), so a decision never waits on the event loop.
 */
export class SpamStore {
  private readonly q;
  /** putReceived rows waiting in the group commit; received() reads them too. */
  private readonly unwrittenReceived = new Map<MessageId, ReceivedRow>();

  constructor(private readonly db: Db) {
    migrate(db, 'spam', MIGRATIONS);
    this.q = {
      complaint: db.prepare('SELECT * FROM spam_complaint WHERE recipient = ? AND complaint_id = ?'),
      byLinkOut: db.prepare('SELECT * FROM spam_complaint WHERE link_out = ?'),
      byMessage: db.prepare('SELECT * FROM spam_complaint WHERE message_id = ?'),
      against: db.prepare(
        "SELECT * FROM spam_complaint WHERE predecessor = ? AND state = 'active' AND counted = 1 AND cleared_at IS NULL AND counted_at > ?",
      ),
      openCount: db.prepare(
        "SELECT count(*) AS n FROM spam_complaint WHERE predecessor = ? AND state = 'active' AND counted = 1 AND cleared_at IS NULL",
      ),
      allAgainst: db.prepare('SELECT * FROM spam_complaint WHERE predecessor = ? ORDER BY counted_at'),
      upsertComplaint: db.prepare(
        `INSERT INTO spam_complaint (recipient, complaint_id, message_id, link_out, successor, link_in, predecessor,
           state, last_at, counted, counted_at, cleared_at, cut_id, frame, proof_digest, proof_signature, packet_at)
         VALUES (@recipient, @complaintId, @messageId, @linkOut, @successor, @linkIn, @predecessor,
           @state, @lastAt, @counted, @countedAt, @clearedAt, @cutId, @frame, @proofDigest, @proofSignature, @packetAt)
         ON CONFLICT(recipient, complaint_id) DO UPDATE SET state = excluded.state, last_at = excluded.last_at,
           counted = excluded.counted, counted_at = excluded.counted_at, cleared_at = excluded.cleared_at,
           cut_id = excluded.cut_id, frame = excluded.frame`,
      ),
      putReceived: db.prepare(
        `INSERT INTO spam_received (message_id, neighbour, link, sender, received_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(message_id) DO NOTHING`,
      ),
      received: db.prepare('SELECT * FROM spam_received WHERE message_id = ?'),
      pruneReceived: db.prepare('DELETE FROM spam_received WHERE expires_at < ?'),
      neighbour: db.prepare('SELECT * FROM spam_neighbour WHERE agent = ?'),
      neighbours: db.prepare('SELECT * FROM spam_neighbour ORDER BY agent'),
      suspended: db.prepare(
        'SELECT * FROM spam_neighbour WHERE suspended_at IS NOT NULL AND revoked_at IS NULL',
      ),
      upsertNeighbour: db.prepare(
        `INSERT INTO spam_neighbour (agent, traffic, traffic_at, total_traffic, cuts, cuts_at, suspended_at, revoked_at, reason, detail)
         VALUES (@agent, @traffic, @trafficAt, @totalTraffic, @cuts, @cutsAt, @suspendedAt, @revokedAt, @reason, @detail)
         ON CONFLICT(agent) DO UPDATE SET traffic = excluded.traffic, traffic_at = excluded.traffic_at,
           total_traffic = excluded.total_traffic,
           cuts = excluded.cuts, cuts_at = excluded.cuts_at, suspended_at = excluded.suspended_at,
           revoked_at = excluded.revoked_at, reason = excluded.reason, detail = excluded.detail`,
      ),
      addCut: db.prepare('INSERT OR IGNORE INTO spam_cut (agent, cut_id, at) VALUES (?, ?, ?)'),
      addRevocation: db.prepare(
        `INSERT INTO spam_revocation (agent, entity, by_agent, at, reason, detail, evidence, verified)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
      ),
      revocationsOf: db.prepare('SELECT * FROM spam_revocation WHERE entity = ? ORDER BY at'),
      revocations: db.prepare('SELECT * FROM spam_revocation ORDER BY at'),
      evidenceAgainst: db.prepare(
        `SELECT by_agent AS byAgent, max(verified) AS verified, max(at) AS at FROM spam_revocation
         WHERE agent = ? AND by_agent != ? GROUP BY by_agent`,
      ),
      putCarried: db.prepare(
        'INSERT OR IGNORE INTO spam_carried (own_complaint_id, origin_recipient, origin_complaint_id) VALUES (?, ?, ?)',
      ),
      carriedFor: db.prepare('SELECT * FROM spam_carried WHERE own_complaint_id = ?'),
      carrierOf: db.prepare(
        'SELECT own_complaint_id FROM spam_carried WHERE origin_recipient = ? AND origin_complaint_id = ?',
      ),
    };
  }

  /** A complaint by (recipient key hex, complaint id). */
  complaint(recipient: string, complaintId: string): ComplaintRow | undefined {
    const r = this.q.complaint.get(recipient, complaintId) as Raw | undefined;
    return r && toComplaint(r);
  }

  /** The complaint kept for a packet handed on with this link id (one per packet). */
  complaintOnLink(linkOut: string): ComplaintRow | undefined {
    const r = this.q.byLinkOut.get(linkOut) as Raw | undefined;
    return r && toComplaint(r);
  }

  /** The recipient's own complaint about one of its messages. */
  complaintAbout(messageId: MessageId): ComplaintRow | undefined {
    const r = this.q.byMessage.get(messageId) as Raw | undefined;
    return r && toComplaint(r);
  }

  /** Open (active, counted, not cleared) complaints against a neighbour counted after `since`. */
  openAgainst(neighbour: AgentId, since: number): ComplaintRow[] {
    return (this.q.against.all(neighbour, since) as Raw[]).map(toComplaint);
  }

  /** Clears every open complaint against a neighbour (reinstated by a human); returns how many. */
  clearOpenAgainst(neighbour: AgentId, at: number, tag: string): number {
    return this.db
      .prepare(
        "UPDATE spam_complaint SET cleared_at = ?, cut_id = ? WHERE predecessor = ? AND state = 'active' AND cleared_at IS NULL",
      )
      .run(at, tag, neighbour).changes;
  }

  /** Open complaints against a neighbour ever (not decayed). */
  openCount(neighbour: AgentId): number {
    return (this.q.openCount.get(neighbour) as { n: number }).n;
  }

  /** Every complaint about packets from a neighbour, oldest first. */
  allAgainst(neighbour: AgentId): ComplaintRow[] {
    return (this.q.allAgainst.all(neighbour) as Raw[]).map(toComplaint);
  }

  /** Creates or updates a complaint (state, time, counting, clearing, evidence). */
  putComplaint(c: ComplaintRow): void {
    this.q.upsertComplaint.run({
      ...c,
      counted: c.counted ? 1 : 0,
      proofDigest: c.proof?.digest ?? null,
      proofSignature: c.proof?.signature ?? null,
      packetAt: c.packetAt ?? null,
    });
  }

  /** Records that our complaint `own` carries the recipient's complaint (origin) upstream (a list). */
  putCarried(own: string, originRecipient: string, originComplaintId: string): void {
    this.q.putCarried.run(own, originRecipient, originComplaintId);
  }

  /** The recipients' complaints our complaint `own` carries (each a row at us with no predecessor). */
  carriedFor(own: string): ComplaintRow[] {
    return (this.q.carriedFor.all(own) as Raw[])
      .map((r) => this.complaint(r.origin_recipient as string, r.origin_complaint_id as string))
      .filter((r): r is ComplaintRow => r !== undefined);
  }

  /** Our complaint that carries this recipient's complaint upstream, if one does. */
  carrierOf(originRecipient: string, originComplaintId: string): string | undefined {
    const r = this.q.carrierOf.get(originRecipient, originComplaintId) as Raw | undefined;
    return r?.own_complaint_id as string | undefined;
  }

  /**
   * Remembers where a received message's manifest came from (first copy wins). Queued in the
   * connection's group commit, not committed alone: the receiver stores the message itself (the
   * mailbox's append) after this call, in the same group commit or a later one, so the row is
   * durable before the message shows, as when it was written through, without a commit (one WAL
   * fsync on the event loop) of its own per message (bench/RESULTS.md 10.6).
   */
  putReceived(r: ReceivedRow): void {
    if (this.unwrittenReceived.has(r.messageId)) return; // first copy wins (the row: ON CONFLICT)
    this.unwrittenReceived.set(r.messageId, r);
    // runSoon: no commit of its own; it rides with the mailbox append's, queued after it.
    groupCommitOf(this.db)
      .runSoon(() =>
        this.q.putReceived.run(r.messageId, r.neighbour, r.link, r.sender, r.receivedAt, r.expiresAt),
      )
      .catch(() => undefined) // a full disk: the complaint about it finds no link, as before a crash
      .finally(() => this.unwrittenReceived.delete(r.messageId));
  }

  received(messageId: MessageId): ReceivedRow | undefined {
    const unwritten = this.unwrittenReceived.get(messageId);
    if (unwritten) return unwritten;
    const r = this.q.received.get(messageId) as Raw | undefined;
    return (
      r && {
        messageId: r.message_id as MessageId,
        neighbour: r.neighbour as AgentId,
        link: r.link as string,
        sender: r.sender as Fingerprint,
        receivedAt: r.received_at as number,
        expiresAt: r.expires_at as number,
      }
    );
  }

  /** Forgets where old messages came from (no hop remembers them any more). */
  pruneReceived(now: number): number {
    return this.q.pruneReceived.run(now).changes;
  }

  neighbour(agent: AgentId): NeighbourRow | undefined {
    const r = this.q.neighbour.get(agent) as Raw | undefined;
    return r && toNeighbour(r);
  }

  neighbours(): NeighbourRow[] {
    return (this.q.neighbours.all() as Raw[]).map(toNeighbour);
  }

  /** Neighbours suspended and not yet revoked (their verdict is due). */
  suspended(): NeighbourRow[] {
    return (this.q.suspended.all() as Raw[]).map(toNeighbour);
  }

  putNeighbour(n: NeighbourRow): void {
    this.q.upsertNeighbour.run({
      agent: n.agent,
      traffic: n.traffic.value,
      trafficAt: n.traffic.at,
      totalTraffic: n.totalTraffic,
      cuts: n.cuts.value,
      cutsAt: n.cuts.at,
      suspendedAt: n.suspendedAt,
      revokedAt: n.revokedAt,
      reason: n.reason,
      detail: n.detail,
    });
  }

  /** Records a cut-off a neighbour reported; true if this cut id is new for it. */
  addCut(agent: AgentId, cutId: string, at: number): boolean {
    return this.q.addCut.run(agent, cutId, at).changes === 1;
  }

  addRevocation(r: Omit<RevocationRow, 'id'>): number {
    const row = this.q.addRevocation.get(
      r.agent,
      r.entity,
      r.byAgent,
      r.at,
      r.reason,
      r.detail,
      r.evidence,
      r.verified,
    ) as { id: number };
    return row.id;
  }

  /** Revocations for spam concerning an entity (ours and those neighbours told us of). */
  revocationsOf(entity: Fingerprint): RevocationRow[] {
    return (this.q.revocationsOf.all(entity) as Raw[]).map(toRevocation);
  }

  revocations(): RevocationRow[] {
    return (this.q.revocations.all() as Raw[]).map(toRevocation);
  }

  /** Per neighbour that revoked `agent` and told us (not `self`): its most verified items, newest time. */
  evidenceAgainst(agent: AgentId, self: AgentId): { byAgent: AgentId; verified: number; at: number }[] {
    return this.q.evidenceAgainst.all(agent, self) as { byAgent: AgentId; verified: number; at: number }[];
  }

  /** Runs `fn` in one transaction. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}

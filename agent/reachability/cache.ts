import { asAgentId, type AgentId, type Fingerprint } from '../../common/ids.ts';
import { migrate, type Db } from '../../store/db.ts';
import type { AddressRecordBody, SignedAddressRecord } from './records.ts';

const MIGRATIONS = [
  `CREATE TABLE reach_record (
     agent TEXT PRIMARY KEY,
     entity TEXT NOT NULL,
     seq INTEGER NOT NULL,
     canonical TEXT NOT NULL,
     signature TEXT NOT NULL,
     addresses TEXT NOT NULL,      -- JSON array, from the record
     received_at INTEGER NOT NULL, -- last time anyone vouched for it (announce or a working dial)
     cert_canonical TEXT,
     cert_signature TEXT);
   CREATE INDEX reach_record_entity ON reach_record(entity);
   CREATE TABLE reach_invalid (
     agent TEXT NOT NULL, address TEXT NOT NULL, failed_at INTEGER NOT NULL,
     PRIMARY KEY (agent, address));`,
  // 1 when the agent announced a record to us itself (registered with us), not only when we
  // learned its record second-hand from a query answer: a directory hands out registered ones.
  `ALTER TABLE reach_record ADD COLUMN registered INTEGER NOT NULL DEFAULT 0;`,
];

/** One cached record with what we learned about its addresses. */
export interface CachedRecord {
  agent: AgentId;
  entity: Fingerprint;
  seq: number;
  record: SignedAddressRecord;
  certificate?: { canonical: string; signature: string };
  /** Addresses not (yet) proven wrong, in the order the agent gave them. */
  addresses: string[];
  receivedAt: number;
  /** The agent announced a record to us itself (registered), not only through someone's answer. */
  registered: boolean;
}

/**
 * The durable address cache (SQLite). Newer records replace older ones; an address that failed
 * is set aside until a newer record lists it again or a dial to it works; records nobody vouched
 * for within the TTL are forgotten.
 */
export class AddressCache {
  constructor(
    private readonly db: Db,
    private readonly clock: () => number,
  ) {
    migrate(db, 'reachability', MIGRATIONS);
  }

  /**
   * Stores a verified record if it is newer than the one held. Returns whether it was.
   * `registered`: the agent announced it to us itself (sticky: a newer record learned
   * second-hand is still that agent's signed word and keeps the registration).
   */
  put(
    body: AddressRecordBody,
    record: SignedAddressRecord,
    certificate?: { canonical: string; signature: string },
    registered = false,
  ): boolean {
    const held = this.db.prepare('SELECT seq FROM reach_record WHERE agent = ?').get(body.agent) as
      { seq: number } | undefined;
    if (held !== undefined && held.seq >= body.seq) {
      if (held.seq === body.seq) this.touch(body.agent);
      if (registered)
        this.db.prepare('UPDATE reach_record SET registered = 1 WHERE agent = ?').run(body.agent);
      return false;
    }
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO reach_record (agent, entity, seq, canonical, signature, addresses, received_at, cert_canonical, cert_signature, registered)
           VALUES (@agent, @entity, @seq, @canonical, @signature, @addresses, @now, @certCanonical, @certSignature, @registered)
           ON CONFLICT(agent) DO UPDATE SET entity = @entity, seq = @seq, canonical = @canonical,
             signature = @signature, addresses = @addresses, received_at = @now,
             registered = MAX(registered, @registered),
             cert_canonical = COALESCE(@certCanonical, cert_canonical),
             cert_signature = COALESCE(@certSignature, cert_signature)`,
        )
        .run({
          agent: body.agent,
          entity: body.entity,
          seq: body.seq,
          canonical: record.canonical,
          signature: record.signature,
          addresses: JSON.stringify(body.addresses),
          now: this.clock(),
          certCanonical: certificate?.canonical ?? null,
          certSignature: certificate?.signature ?? null,
          registered: registered ? 1 : 0,
        });
      // A fresh statement from the agent supersedes our failed attempts.
      this.db.prepare('DELETE FROM reach_invalid WHERE agent = ?').run(body.agent);
    })();
    return true;
  }

  get(agent: AgentId, maxAgeMs: number): CachedRecord | undefined {
    const row = this.db
      .prepare('SELECT * FROM reach_record WHERE agent = ? AND received_at >= ?')
      .get(agent, this.clock() - maxAgeMs) as Row | undefined;
    return row === undefined ? undefined : this.toCached(row);
  }

  /**
   * Records of every agent of an entity that someone vouched for within maxAgeMs. This says
   * nothing about the record's own age (a working dial vouches too): whoever hands records on
   * re-verifies them first (Reachability.answer).
   */
  ofEntity(entity: Fingerprint, maxAgeMs: number): CachedRecord[] {
    return (
      this.db
        .prepare('SELECT * FROM reach_record WHERE entity = ? AND received_at >= ?')
        .all(entity, this.clock() - maxAgeMs) as Row[]
    ).map((row) => this.toCached(row));
  }

  /**
   * The agent's listed addresses that a dial set aside, the longest-failed first: the last
   * resort when nothing else answers. A failed dial cannot tell "moved" from "offline", and an
   * agent that was only offline (a laptop asleep, a node restarting) comes back where it was;
   * two such neighbours that had each set the other aside would otherwise never link again.
   */
  setAside(agent: AgentId, maxAgeMs: number): string[] {
    const row = this.db
      .prepare('SELECT addresses FROM reach_record WHERE agent = ? AND received_at >= ?')
      .get(agent, this.clock() - maxAgeMs) as { addresses: string } | undefined;
    if (row === undefined) return [];
    const failedAt = new Map(
      (
        this.db.prepare('SELECT address, failed_at FROM reach_invalid WHERE agent = ?').all(agent) as {
          address: string;
          failed_at: number;
        }[]
      ).map((r) => [r.address, r.failed_at]),
    );
    return (JSON.parse(row.addresses) as string[])
      .filter((a) => failedAt.has(a))
      .sort((x, y) => failedAt.get(x)! - failedAt.get(y)!);
  }

  markFailed(agent: AgentId, address: string): void {
    this.db
      .prepare('INSERT OR REPLACE INTO reach_invalid (agent, address, failed_at) VALUES (?, ?, ?)')
      .run(agent, address, this.clock());
  }

  markWorked(agent: AgentId, address: string): void {
    this.db.prepare('DELETE FROM reach_invalid WHERE agent = ? AND address = ?').run(agent, address);
    this.touch(agent);
  }

  /** Forgets records nobody vouched for within maxAgeMs. Returns how many went. */
  forgetOlderThan(maxAgeMs: number): number {
    const cutoff = this.clock() - maxAgeMs;
    const gone = this.db.prepare('SELECT agent FROM reach_record WHERE received_at < ?').all(cutoff) as {
      agent: string;
    }[];
    this.db.transaction(() => {
      for (const { agent } of gone) {
        this.db.prepare('DELETE FROM reach_record WHERE agent = ?').run(agent);
        this.db.prepare('DELETE FROM reach_invalid WHERE agent = ?').run(agent);
      }
    })();
    return gone.length;
  }

  private touch(agent: string): void {
    this.db.prepare('UPDATE reach_record SET received_at = ? WHERE agent = ?').run(this.clock(), agent);
  }

  private toCached(row: Row): CachedRecord {
    const invalid = new Set(
      (
        this.db.prepare('SELECT address FROM reach_invalid WHERE agent = ?').all(row.agent) as {
          address: string;
        }[]
      ).map((r) => r.address),
    );
    return {
      agent: asAgentId(row.agent),
      entity: row.entity as Fingerprint,
      seq: row.seq,
      record: { canonical: row.canonical, signature: row.signature },
      certificate:
        row.cert_canonical && row.cert_signature
          ? { canonical: row.cert_canonical, signature: row.cert_signature }
          : undefined,
      addresses: (JSON.parse(row.addresses) as string[]).filter((a) => !invalid.has(a)),
      receivedAt: row.received_at,
      registered: row.registered === 1,
    };
  }
}

type Row = {
  agent: string;
  entity: string;
  seq: number;
  canonical: string;
  signature: string;
  addresses: string;
  received_at: number;
  cert_canonical: string | null;
  cert_signature: string | null;
  registered: number;
};

import type Database from 'better-sqlite3';
import type { AgentId, Fingerprint, MessageId } from '../../common/ids.ts';
import { migrate, statementCache, type Db } from '../../store/db.ts';
import { groupCommitOf, Rider } from '../../store/group-commit.ts';
import type { FileStamp } from '../payload/source.ts';
import type { DeliveryStore, HeldPacket, HeldRef, HopRecord, InboundRecord, OutboxRecord } from './store.ts';

/** Exported so that a test can build a database as an older Kith left it. */
export const DELIVERY_MIGRATIONS = [
  `CREATE TABLE delivery_outbox (
     id TEXT PRIMARY KEY, recipient TEXT NOT NULL, source_kind TEXT NOT NULL, source_path TEXT,
     source_data BLOB, size INTEGER NOT NULL, sealed_manifest BLOB NOT NULL, content_key BLOB NOT NULL,
     chunks INTEGER NOT NULL, chunk_size INTEGER NOT NULL, acked INTEGER NOT NULL, state TEXT NOT NULL,
     created_at INTEGER NOT NULL, deadline INTEGER NOT NULL);
   CREATE TABLE delivery_hop (
     in_id TEXT PRIMARY KEY, from_agent TEXT NOT NULL, out_id TEXT UNIQUE, to_agent TEXT,
     expires_at INTEGER NOT NULL);
   CREATE INDEX delivery_hop_expiry ON delivery_hop (expires_at);
   CREATE TABLE delivery_delivered (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
   CREATE TABLE delivery_inbound (
     id TEXT PRIMARY KEY, manifest BLOB NOT NULL, sender TEXT NOT NULL, verified INTEGER NOT NULL,
     received BLOB NOT NULL, from_agent TEXT NOT NULL, in_id TEXT NOT NULL);`,
  // Store and forward: packets held for unreachable next hops survive a restart.
  `CREATE TABLE delivery_held (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, next_agent TEXT NOT NULL, frame BLOB NOT NULL,
     expires_at INTEGER NOT NULL, report_to TEXT, report_link TEXT, report_key BLOB, report_tag BLOB);
   CREATE INDEX delivery_held_next ON delivery_held (next_agent, seq);
   CREATE INDEX delivery_held_expiry ON delivery_held (expires_at);`,
  // Hop accountability: the neighbour's hop signature and the digest it covers, kept as long as
  // the hop record (NULL in rows from before: nothing to prove them with).
  `ALTER TABLE delivery_hop ADD COLUMN proof_digest BLOB;
   ALTER TABLE delivery_hop ADD COLUMN proof_signature BLOB;`,
  // Wrap-once: a list copy's row holds only its head; the shared body is one file (7.8, v2).
  `ALTER TABLE delivery_outbox ADD COLUMN shared_body TEXT;`,
];

type Row = Record<string, unknown>;
type Statement = Database.Statement<unknown[]>;

function toOutbox(r: Row): OutboxRecord {
  return {
    id: r.id as MessageId,
    to: r.recipient as Fingerprint,
    source: sourceOf(r),
    size: r.size as number,
    sealedManifest: r.sealed_manifest as Buffer,
    contentKey: r.content_key as Buffer,
    chunks: r.chunks as number,
    chunkSize: r.chunk_size as number,
    acked: r.acked as number,
    state: r.state as OutboxRecord['state'],
    createdAt: r.created_at as number,
    deadline: r.deadline as number,
    ...(typeof r.shared_body === 'string' ? { sharedBody: r.shared_body } : {}),
  };
}

/**
 * A row's payload source. 'in-place' (`kith send --file`, docs/protocol.md 14): source_path is the
 * user's file, source_data the JSON {"head": base64 header, "stamp": FileStamp} it was sealed with.
 */
function sourceOf(r: Row): OutboxRecord['source'] {
  if (r.source_kind === 'file') return { kind: 'file', path: r.source_path as string };
  if (r.source_kind === 'in-place') {
    const { head, stamp } = JSON.parse((r.source_data as Buffer).toString('utf8')) as {
      head: string;
      stamp: FileStamp;
    };
    return { kind: 'in-place', path: r.source_path as string, head: Buffer.from(head, 'base64'), stamp };
  }
  return { kind: 'bytes', data: r.source_data as Buffer };
}

function sourceData(s: OutboxRecord['source']): Buffer | null {
  if (s.kind === 'bytes') return s.data;
  if (s.kind === 'in-place')
    return Buffer.from(JSON.stringify({ head: s.head.toString('base64'), stamp: s.stamp }), 'utf8');
  return null;
}

/** The delivery engine's durable state in the node's SQLite database (module "delivery"). */
export class SqliteDeliveryStore implements DeliveryStore {
  /** Compiled statements, by SQL text: better-sqlite3 compiles again on every prepare(), which a
   * relay's profile showed on its per-packet path (bench/RESULTS.md 10). */
  private readonly sql: (text: string) => Statement;

  constructor(private readonly db: Db) {
    migrate(db, 'delivery', DELIVERY_MIGRATIONS);
    this.sql = statementCache(db);
  }

  /**
   * putHop in the connection's group commit (store/group-commit.ts): resolves once the record is
   * durable, sharing one commit with every write queued in the same event-loop turn (other
   * packets, SMTP submissions).
   */
  putHopDurable(r: HopRecord): Promise<void> {
    return groupCommitOf(this.db).run(() => this.putHop(r));
  }

  putHopSoon(r: HopRecord): Promise<void> {
    return groupCommitOf(this.db).runSoon(() => this.putHop(r));
  }

  putOutbox(r: OutboxRecord): void {
    this.sql(
      `INSERT INTO delivery_outbox (id, recipient, source_kind, source_path, source_data, size,
         sealed_manifest, content_key, chunks, chunk_size, acked, state, created_at, deadline,
         shared_body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      r.id,
      r.to,
      r.source.kind,
      r.source.kind === 'bytes' ? null : r.source.path,
      sourceData(r.source),
      r.size,
      r.sealedManifest,
      r.contentKey,
      r.chunks,
      r.chunkSize,
      r.acked,
      r.state,
      r.createdAt,
      r.deadline,
      r.sharedBody ?? null,
    );
  }
  getOutbox(id: MessageId): OutboxRecord | undefined {
    const r = this.sql('SELECT * FROM delivery_outbox WHERE id = ?').get(id) as Row | undefined;
    return r && toOutbox(r);
  }
  updateOutbox(id: MessageId, patch: Partial<Pick<OutboxRecord, 'acked' | 'state'>>): void {
    if (patch.acked !== undefined) {
      this.sql('UPDATE delivery_outbox SET acked = max(acked, ?) WHERE id = ?').run(patch.acked, id);
    }
    if (patch.state !== undefined) {
      this.sql('UPDATE delivery_outbox SET state = ? WHERE id = ?').run(patch.state, id);
    }
  }
  pendingOutbox(): OutboxRecord[] {
    return (this.sql("SELECT * FROM delivery_outbox WHERE state = 'pending'").all() as Row[]).map(toOutbox);
  }
  putHop(r: HopRecord): void {
    this.sql(
      `INSERT OR REPLACE INTO delivery_hop
           (in_id, from_agent, out_id, to_agent, expires_at, proof_digest, proof_signature)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(r.inId, r.from, r.outId, r.to, r.expiresAt, r.proof?.digest ?? null, r.proof?.signature ?? null);
  }
  hopByOut(outId: string): HopRecord | undefined {
    const r = this.sql('SELECT * FROM delivery_hop WHERE out_id = ?').get(outId) as Row | undefined;
    return (
      r && {
        inId: r.in_id as string,
        from: r.from_agent as AgentId,
        proof:
          r.proof_digest && r.proof_signature
            ? { digest: r.proof_digest as Buffer, signature: r.proof_signature as Buffer }
            : null,
        outId: r.out_id as string | null,
        to: r.to_agent as AgentId | null,
        expiresAt: r.expires_at as number,
      }
    );
  }
  hasHopIn(inId: string): boolean {
    return this.sql('SELECT 1 FROM delivery_hop WHERE in_id = ?').get(inId) !== undefined;
  }
  pruneHops(now: number): number {
    return this.sql('DELETE FROM delivery_hop WHERE expires_at < ?').run(now).changes;
  }
  isDelivered(id: MessageId): boolean {
    return this.sql('SELECT 1 FROM delivery_delivered WHERE id = ?').get(id) !== undefined;
  }
  markDelivered(id: MessageId, at: number): void {
    this.sql('INSERT OR IGNORE INTO delivery_delivered VALUES (?, ?)').run(id, at);
  }
  updateOutboxDurable(id: MessageId, patch: Partial<Pick<OutboxRecord, 'acked' | 'state'>>): Promise<void> {
    return groupCommitOf(this.db).run(() => this.updateOutbox(id, patch));
  }

  markDeliveredDurable(id: MessageId, at: number): Promise<void> {
    return groupCommitOf(this.db).run(() => this.markDelivered(id, at));
  }

  deliveredRider(id: MessageId, at: () => number): Rider {
    return new Rider(this.db, () => this.markDelivered(id, at()));
  }
  getInbound(id: MessageId): InboundRecord | undefined {
    const r = this.sql('SELECT * FROM delivery_inbound WHERE id = ?').get(id) as Row | undefined;
    return (
      r && {
        id: r.id as MessageId,
        manifest: r.manifest as Buffer,
        sender: r.sender as Fingerprint,
        verified: r.verified === 1,
        received: r.received as Buffer,
        from: r.from_agent as AgentId,
        inId: r.in_id as string,
      }
    );
  }
  putInbound(r: InboundRecord): void {
    this.sql('INSERT OR REPLACE INTO delivery_inbound VALUES (?, ?, ?, ?, ?, ?, ?)').run(
      r.id,
      r.manifest,
      r.sender,
      r.verified ? 1 : 0,
      r.received,
      r.from,
      r.inId,
    );
  }
  setReceived(id: MessageId, received: Buffer): void {
    this.sql('UPDATE delivery_inbound SET received = ? WHERE id = ?').run(received, id);
  }
  deleteInbound(id: MessageId): void {
    this.sql('DELETE FROM delivery_inbound WHERE id = ?').run(id);
  }
  inboundIds(): MessageId[] {
    return (this.sql('SELECT id FROM delivery_inbound').all() as { id: string }[]).map(
      (r) => r.id as MessageId,
    );
  }
  putHeld(p: Omit<HeldPacket, 'seq'>): number {
    const r = this.sql(
      `INSERT INTO delivery_held (next_agent, frame, expires_at, report_to, report_link, report_key, report_tag)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      p.next,
      p.frame,
      p.expiresAt,
      p.report?.to ?? null,
      p.report?.link ?? null,
      p.report?.secret.reportKey ?? null,
      p.report?.secret.reportTag ?? null,
    );
    return Number(r.lastInsertRowid);
  }
  heldFor(next: AgentId, afterSeq: number, limit: number): HeldPacket[] {
    const rows = this.sql(
      'SELECT * FROM delivery_held WHERE next_agent = ? AND seq > ? ORDER BY seq LIMIT ?',
    ).all(next, afterSeq, limit) as Row[];
    return rows.map((r) => ({
      seq: r.seq as number,
      next: r.next_agent as AgentId,
      frame: r.frame as Buffer,
      expiresAt: r.expires_at as number,
      report: r.report_to
        ? {
            to: r.report_to as AgentId,
            link: r.report_link as string,
            secret: { reportKey: r.report_key as Buffer, reportTag: r.report_tag as Buffer },
          }
        : undefined,
    }));
  }
  deleteHeld(seq: number): void {
    this.sql('DELETE FROM delivery_held WHERE seq = ?').run(seq);
  }
  heldBytes(): number {
    const r = this.sql('SELECT COALESCE(SUM(length(frame)), 0) AS n FROM delivery_held').get() as {
      n: number;
    };
    return r.n;
  }
  heldIndex(afterSeq: number, limit: number): HeldRef[] {
    const rows = this.sql(
      'SELECT seq, next_agent, expires_at FROM delivery_held WHERE seq > ? ORDER BY seq LIMIT ?',
    ).all(afterSeq, limit) as { seq: number; next_agent: string; expires_at: number }[];
    return rows.map((r) => ({ seq: r.seq, next: r.next_agent as AgentId, expiresAt: r.expires_at }));
  }
  hasHeld(seq: number): boolean {
    return this.sql('SELECT 1 FROM delivery_held WHERE seq = ?').get(seq) !== undefined;
  }
  pruneHeld(now: number): number {
    return this.sql('DELETE FROM delivery_held WHERE expires_at < ?').run(now).changes;
  }
}

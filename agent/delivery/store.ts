import type { AgentId, Fingerprint, MessageId } from '../../common/ids.ts';
import type { HopSecret } from '../onion/layers.ts';
import type { InPlaceFile } from '../payload/source.ts';
import type { Rider } from '../../store/group-commit.ts';

/** One outbound message as the sender keeps it until it is delivered or given up. */
export interface OutboxRecord {
  id: MessageId;
  to: Fingerprint;
  /**
   * Where the payload is read from: a file that stays until delivery ends, small inline bytes, or
   * a header ‖ a user's file read where it lies (`kith send --file`, checked against its stamp).
   */
  source: { kind: 'file'; path: string } | { kind: 'bytes'; data: Buffer } | InPlaceFile;
  size: number;
  /**
   * The manifest as sealed for the recipient (re-sent unchanged on every attempt); with
   * `sharedBody`, only this copy's head (sender fingerprint ‖ its PKESK packets).
   */
  sealedManifest: Buffer;
  /**
   * Wrap-once (docs/protocol.md 7.8, manifest version 2): the file holding the SEIPD packet every
   * copy of a list post shares, stored once; the manifest sent is sealedManifest ‖ its bytes.
   */
  sharedBody?: string;
  /** Key of the chunks (the sender's own secret; the recipient gets it inside the manifest). */
  contentKey: Buffer;
  /** Units to send: the payload's chunks, plus the hash unit for a v3 manifest (outbox-record.ts hashUnitIndex). */
  chunks: number;
  chunkSize: number;
  /** Chunks the recipient acknowledged (cumulative): a resumed transfer starts here. */
  acked: number;
  state: 'pending' | 'delivered' | 'failed';
  /** Unix ms. */
  createdAt: number;
  /** Unix ms after which delivery is given up. */
  deadline: number;
}

/**
 * The neighbour's own word that it handed us a packet: its hop signature and the digest it signs
 * (docs/protocol.md 7.2). 96 bytes, no header or body; re-checked by verifyHopProof (proof.ts).
 */
export interface HopProof {
  /** hopDigest(our agent key, header, body) as received: the 32 bytes the neighbour signed. */
  digest: Buffer;
  /** The neighbour's Ed25519 signature over `digest` (64 bytes). */
  signature: Buffer;
}

/** What a hop remembers about one packet it handled (routes reports and complaints back). */
export interface HopRecord {
  /** Link id of the packet as received (hex of 16 bytes). */
  inId: string;
  /** The neighbour that handed it to us. */
  from: AgentId;
  /** Proof that `from` handed it to us; null for records kept before proofs were (delivery migration 3). */
  proof: HopProof | null;
  /** Link id of the packet as handed on; null at the recipient. */
  outId: string | null;
  /** The neighbour it was handed to; null at the recipient. */
  to: AgentId | null;
  /** Unix ms after which the record is forgotten. */
  expiresAt: number;
}

/** An inbound message the recipient is assembling or has delivered. */
export interface InboundRecord {
  id: MessageId;
  /** Decoded manifest (JSON), the content key inside: the recipient's own secret. */
  manifest: Buffer;
  sender: Fingerprint;
  verified: boolean;
  /** Bitmap of stored chunks. */
  received: Buffer;
  /** Neighbour and link id of the manifest packet, for complaints. */
  from: AgentId;
  inId: string;
}

/** A packet a relay holds while its next hop is unreachable (store and forward). */
export interface HeldPacket {
  /** Arrival order, assigned by the store: packets are handed on in this order. */
  seq: number;
  /** The neighbour the packet waits for. */
  next: AgentId;
  /** The signed onion frame, ready to send. */
  frame: Buffer;
  /** Unix ms after which the packet is dropped (the message's own deadline). */
  expiresAt: number;
  /** Where the "forwarded" report goes once the packet is handed on. */
  report?: { to: AgentId; link: string; secret: HopSecret };
}

/** A held packet without its frame: what the transit queue keeps a job for. */
export type HeldRef = Pick<HeldPacket, 'seq' | 'next' | 'expiresAt'>;

/**
 * Durable state of the delivery engine. MemoryDeliveryStore serves the simulator and tests;
 * SqliteDeliveryStore serves real nodes. Methods are synchronous (better-sqlite3 is).
 */
export interface DeliveryStore {
  /** Adds a new outbound message. */
  putOutbox(record: OutboxRecord): void;
  /** The outbound message, if still known. */
  getOutbox(id: MessageId): OutboxRecord | undefined;
  /** Records acknowledged chunks and/or the final state. */
  updateOutbox(id: MessageId, patch: Partial<Pick<OutboxRecord, 'acked' | 'state'>>): void;
  /** updateOutbox in a commit shared with other writes; resolves once durable (SQLite). */
  updateOutboxDurable?(id: MessageId, patch: Partial<Pick<OutboxRecord, 'acked' | 'state'>>): Promise<void>;
  /** Messages still to deliver (restarted after a crash). */
  pendingOutbox(): OutboxRecord[];
  /** Remembers a packet handled as a hop. */
  putHop(record: HopRecord): void;
  /**
   * putHop that resolves once the record is durable, in a commit shared with other writes (a
   * store with commits that cost an fsync: SQLite). Without it the relay calls putHop and goes on.
   */
  putHopDurable?(record: HopRecord): Promise<void>;
  /**
   * putHopDurable that starts no commit of its own: it rides with the next write's (GroupCommit
   * runSoon), for a record nobody waits on (the recipient's, committed with the mailbox append).
   */
  putHopSoon?(record: HopRecord): Promise<void>;
  /** The hop record of a packet we handed on, by its outgoing link id. */
  hopByOut(outId: string): HopRecord | undefined;
  /** True if we already handled a packet with this incoming link id (replay). */
  hasHopIn(inId: string): boolean;
  /** Forgets hop records that expired. */
  pruneHops(now: number): number;
  /** True once a message id was delivered to the sink (exactly once). */
  isDelivered(id: MessageId): boolean;
  /** Marks a message id delivered. */
  markDelivered(id: MessageId, at: number): void;
  /** markDelivered in a commit shared with other writes; resolves once durable (SQLite). */
  markDeliveredDurable?(id: MessageId, at: number): Promise<void>;
  /**
   * markDelivered as a write the sink may commit with the message's own rows (store/group-commit.ts
   * Rider; SQLite): the mailbox append takes it into its savepoint, so both commit in one fsync.
   */
  deliveredRider?(id: MessageId, at: () => number): Rider;
  /** An inbound message being assembled. */
  getInbound(id: MessageId): InboundRecord | undefined;
  /** Creates or replaces an inbound record. */
  putInbound(record: InboundRecord): void;
  /** Persists the bitmap of stored chunks. */
  setReceived(id: MessageId, received: Buffer): void;
  /** Drops an inbound record (after delivery). */
  deleteInbound(id: MessageId): void;
  /** Ids of every inbound message being assembled (their idle expiry is armed at start). */
  inboundIds(): MessageId[];
  /** Keeps a packet for an unreachable next hop; returns its seq. */
  putHeld(packet: Omit<HeldPacket, 'seq'>): number;
  /** Up to `limit` packets held for a neighbour with seq > `afterSeq`, oldest first (bounded memory). */
  heldFor(next: AgentId, afterSeq: number, limit: number): HeldPacket[];
  /** Forgets a held packet (handed on or expired). */
  deleteHeld(seq: number): void;
  /** Total frame bytes held for others. */
  heldBytes(): number;
  /** Drops held packets that expired; returns how many. */
  pruneHeld(now: number): number;
  /** Every held packet (without frames), in arrival order, seq > `afterSeq`, at most `limit`. */
  heldIndex(afterSeq: number, limit: number): HeldRef[];
  /** True while the packet is held (not yet handed on, expired or pruned). */
  hasHeld(seq: number): boolean;
}

/** In-memory store for the simulator and tests. */
export class MemoryDeliveryStore implements DeliveryStore {
  readonly outbox = new Map<MessageId, OutboxRecord>();
  readonly hopsOut = new Map<string, HopRecord>();
  readonly hopsIn = new Map<string, HopRecord>();
  readonly delivered = new Map<MessageId, number>();
  readonly inbound = new Map<MessageId, InboundRecord>();
  readonly held = new Map<number, HeldPacket>();
  private heldSeq = 0;

  putOutbox(r: OutboxRecord): void {
    this.outbox.set(r.id, { ...r });
  }
  getOutbox(id: MessageId): OutboxRecord | undefined {
    const r = this.outbox.get(id);
    return r && { ...r };
  }
  updateOutbox(id: MessageId, patch: Partial<Pick<OutboxRecord, 'acked' | 'state'>>): void {
    const r = this.outbox.get(id);
    if (r) Object.assign(r, patch);
  }
  pendingOutbox(): OutboxRecord[] {
    return [...this.outbox.values()].filter((r) => r.state === 'pending').map((r) => ({ ...r }));
  }
  putHop(r: HopRecord): void {
    // Copies, as SQLite does: a caller's buffers (views of a frame) neither leak in nor alias.
    const copy = {
      ...r,
      proof: r.proof && { digest: Buffer.from(r.proof.digest), signature: Buffer.from(r.proof.signature) },
    };
    this.hopsIn.set(r.inId, copy);
    if (r.outId) this.hopsOut.set(r.outId, copy);
  }
  hopByOut(outId: string): HopRecord | undefined {
    return this.hopsOut.get(outId);
  }
  hasHopIn(inId: string): boolean {
    return this.hopsIn.has(inId);
  }
  pruneHops(now: number): number {
    let n = 0;
    for (const [k, r] of this.hopsIn) {
      if (r.expiresAt >= now) continue;
      this.hopsIn.delete(k);
      if (r.outId) this.hopsOut.delete(r.outId);
      n++;
    }
    return n;
  }
  isDelivered(id: MessageId): boolean {
    return this.delivered.has(id);
  }
  markDelivered(id: MessageId, at: number): void {
    this.delivered.set(id, at);
  }
  getInbound(id: MessageId): InboundRecord | undefined {
    return this.inbound.get(id);
  }
  putInbound(r: InboundRecord): void {
    this.inbound.set(r.id, r);
  }
  setReceived(id: MessageId, received: Buffer): void {
    const r = this.inbound.get(id);
    if (r) r.received = Buffer.from(received);
  }
  deleteInbound(id: MessageId): void {
    this.inbound.delete(id);
  }
  inboundIds(): MessageId[] {
    return [...this.inbound.keys()];
  }
  putHeld(packet: Omit<HeldPacket, 'seq'>): number {
    const seq = ++this.heldSeq;
    this.held.set(seq, { ...packet, seq });
    return seq;
  }
  heldFor(next: AgentId, afterSeq: number, limit: number): HeldPacket[] {
    return [...this.held.values()].filter((p) => p.next === next && p.seq > afterSeq).slice(0, limit);
  }
  deleteHeld(seq: number): void {
    this.held.delete(seq);
  }
  heldBytes(): number {
    let n = 0;
    for (const p of this.held.values()) n += p.frame.length;
    return n;
  }
  pruneHeld(now: number): number {
    let n = 0;
    for (const [seq, p] of this.held) {
      if (p.expiresAt >= now) continue;
      this.held.delete(seq);
      n++;
    }
    return n;
  }
  heldIndex(afterSeq: number, limit: number): HeldRef[] {
    return [...this.held.values()]
      .filter((p) => p.seq > afterSeq)
      .slice(0, limit)
      .map(({ seq, next, expiresAt }) => ({ seq, next, expiresAt }));
  }
  hasHeld(seq: number): boolean {
    return this.held.has(seq);
  }
}

import { createHash } from 'node:crypto';
import type { AgentId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import { MAX_FRAME_BYTES, type Transport } from '../transport.ts';
import type { SignedChange, VersionVector } from './change.ts';
import { decodeSync, encodeSync, type SyncFrame } from './frames.ts';
import { emptyTouched, type Op, type Touched } from './model.ts';
import type { Received, Replica } from './replica.ts';

/** What the engine needs from the mailbox side (agent/sync/bridge.ts). */
export interface SyncSink {
  /** Brings the local mailbox in line with what applied changes touched. */
  applied(touched: Touched): Promise<void>;
  /** Hashes of messages that show in the merged state but whose bytes are not here yet. */
  missingBlobs(): string[];
  /** The bytes of a message by content hash, if this agent has them. */
  readBlob(hash: string): Promise<Buffer | undefined>;
  /** A message's bytes arrived from a sibling (hash checked). */
  blobArrived(hash: string, bytes: Buffer): Promise<void>;
  /** The end-to-end ciphertext a delivered message arrived in, if kept (sent instead of the bytes). */
  readSealed?(hash: string, to: AgentId): Promise<Buffer | undefined>;
  /**
   * Opens a sibling's sealed form with this agent's own key and rebuilds the stored message;
   * undefined when it does not open or does not rebuild the bytes of `hash` (then the plain
   * bytes are asked for).
   */
  openSealed?(hash: string, sealed: Buffer): Promise<Buffer | undefined>;
}

export interface SyncEngineOptions {
  transport: Transport;
  replica: Replica;
  sink: SyncSink;
  /** Whether a linked agent is a certified, unrevoked agent of our entity. */
  isSibling: (agent: AgentId) => boolean;
  /** Records a refused change (reason code) for `kith` to show; nothing else happens to it. */
  onRefused?: (r: { author?: string; seq?: number; reason: string; via: AgentId }) => void;
  log: Logger;
  /** Changes per frame (default 200) and bytes per blob chunk (default 512 KiB). */
  batch?: number;
  chunkBytes?: number;
  /** Largest message accepted from a sibling (default 256 MiB). */
  maxBlobBytes?: number;
}

/** How long a request for message bytes stands before a link-up or the timer asks again. */
const REASK_MS = 30_000;
/** Pause before a sibling's pump tries again after a failed send. */
const RETRY_MS = 1_000;

/** Counters for tests, logs and `kith` status. */
export interface SyncCounters {
  sent: number;
  applied: number;
  duplicate: number;
  refused: Record<string, number>;
  blobsSent: number;
  blobsReceived: number;
  /** Messages sent and received as their end-to-end ciphertext (frame kind 5). */
  sealedSent: number;
  sealedReceived: number;
  /** Sealed forms that did not open or rebuild here, so the plain bytes were asked for. */
  sealedFallback: number;
}

/**
 * Anti-entropy and push between the agents of one entity, over their links (docs/protocol.md
 * "Sync"). On link-up each side sends its version vector; whoever holds changes the other lacks
 * sends them, oldest first per author, in batches. A new change (local, or applied from one
 * sibling) is pushed to every other linked sibling by the same per-peer pump, so push and catch-up
 * are one code path. A refused gap answers with our version vector, which makes the sender start
 * over from what we really have. Message bytes follow on request ("want"), in chunks.
 */
export class SyncEngine {
  /** Per linked sibling: what we believe it has (its version vector plus what we sent since). */
  private readonly known = new Map<AgentId, VersionVector>();
  private readonly pumping = new Map<AgentId, Promise<void>>();
  private readonly again = new Set<AgentId>();
  private readonly incoming = new Map<string, { total: number; parts: Buffer[]; received: number }>();
  /** Siblings that asked for bytes we did not have yet: served when they arrive. */
  private readonly waiting = new Map<string, Set<AgentId>>();
  /** Hashes asked for, and when: asked again only after REASK_MS (a sibling may not have them yet). */
  private readonly requested = new Map<string, number>();
  private started = false;
  private readonly batch: number;
  private readonly chunkBytes: number;
  private readonly maxBlobBytes: number;
  readonly counters: SyncCounters = {
    sent: 0,
    applied: 0,
    duplicate: 0,
    refused: {},
    blobsSent: 0,
    blobsReceived: 0,
    sealedSent: 0,
    sealedReceived: 0,
    sealedFallback: 0,
  };
  private readonly listeners = new Set<() => void>();

  constructor(private readonly o: SyncEngineOptions) {
    this.batch = o.batch ?? 200;
    this.chunkBytes = o.chunkBytes ?? 512 * 1024;
    this.maxBlobBytes = o.maxBlobBytes ?? 256 * 1024 * 1024;
    o.transport.onFrame((from, frame) => this.onFrame(from, frame));
    o.transport.onLinkChange((peer, up) => this.onLink(peer, up));
  }

  start(): void {
    this.started = true;
    for (const peer of this.o.transport.neighbours()) this.onLink(peer, true);
  }

  async stop(): Promise<void> {
    this.started = false;
    await Promise.allSettled([...this.pumping.values()]);
    this.known.clear();
  }

  /** Records local ops as a change and pushes it to linked siblings; `alsoWrite` commits with it. */
  local(ops: Op[], alsoWrite?: () => void): void {
    if (ops.length === 0) return;
    this.o.replica.local(ops, alsoWrite);
    this.pushAll();
    this.changed();
  }

  /**
   * local() inside a caller's open transaction (the mailbox append's, MailStore.onArrival): the
   * change is pushed only when the returned function hears that transaction committed; if it did
   * not, the version vector is read back from the store (the change is not in the log).
   */
  localInTransaction(ops: Op[], alsoWrite?: () => void): (committed: boolean) => void {
    this.o.replica.local(ops, alsoWrite);
    return (committed) => {
      if (!committed) return this.o.replica.reloadVersionVector();
      this.pushAll();
      this.changed();
    };
  }

  /** Linked siblings right now. */
  siblings(): AgentId[] {
    return this.o.transport.neighbours().filter((p) => this.o.isSibling(p));
  }

  /**
   * How much of the siblings' history this agent holds: changes (summed over authors) against
   * the most any linked sibling has told us it holds, and how many siblings have told us at all.
   */
  historyProgress(): { changesHeld: number; changesKnown: number; siblingsHeard: number } {
    const own = this.o.replica.versionVector();
    const best: VersionVector = { ...own };
    let heard = 0;
    for (const [peer, vv] of this.known) {
      if (!this.o.isSibling(peer)) continue;
      heard++;
      for (const [a, s] of Object.entries(vv)) best[a] = Math.max(best[a] ?? 0, s);
    }
    const sum = (vv: VersionVector) => Object.values(vv).reduce((x, y) => x + y, 0);
    return { changesHeld: sum(own), changesKnown: sum(best), siblingsHeard: heard };
  }

  /** Hears about every applied change batch and every message that arrived (tests, IDLE). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Sends our version vector to every linked sibling (the node's timer, every 30 s): each answers
   * with what we lack. A link-up that went unnoticed (a connection replaced while the old one
   * closed) or a lost frame is healed this way without waiting for the next link-up.
   */
  antiEntropy(): void {
    if (!this.started) return;
    const vv = this.o.replica.versionVector();
    for (const peer of this.siblings()) this.sendFrame(peer, { kind: 'vv', vv });
  }

  /** Asks linked siblings again for message bytes still missing (after a link-up, or by a timer). */
  requestMissing(): void {
    const hashes = this.toRequest(true);
    if (hashes.length === 0) return;
    for (const peer of this.siblings()) this.sendFrame(peer, { kind: 'want', hashes });
  }

  /**
   * Missing message bytes not asked for lately (at most 1,000). Without this, every batch of
   * changes would ask again for everything still on its way, and the bytes would travel several
   * times; `again` (link-up, timer) also re-asks what was asked long enough ago to be lost.
   */
  private toRequest(again: boolean): string[] {
    const now = Date.now();
    const out: string[] = [];
    for (const h of this.o.sink.missingBlobs()) {
      if (this.incoming.has(h)) continue;
      const at = this.requested.get(h);
      if (at !== undefined && !(again && now - at > REASK_MS)) continue;
      this.requested.set(h, now);
      out.push(h);
      if (out.length >= 1000) break;
    }
    return out;
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  private onLink(peer: AgentId, up: boolean): void {
    if (!up) {
      this.known.delete(peer);
      return;
    }
    if (!this.started || !this.o.isSibling(peer)) return;
    this.sendFrame(peer, { kind: 'vv', vv: this.o.replica.versionVector() });
    this.requestMissing();
  }

  private sendFrame(peer: AgentId, frame: SyncFrame): Promise<void> {
    return this.o.transport.send(peer, encodeSync(frame)).catch((err: Error) => {
      this.o.log.debug({ peer, err: err.message }, 'a sync frame was not sent');
    });
  }

  private pushAll(): void {
    for (const peer of this.known.keys()) this.pump(peer);
  }

  /** Sends a sibling what it lacks until it lacks nothing; one pump per sibling at a time. */
  private pump(peer: AgentId): void {
    if (this.pumping.has(peer)) {
      this.again.add(peer);
      return;
    }
    const run = (async () => {
      do {
        this.again.delete(peer);
        for (;;) {
          const theirs = this.known.get(peer);
          if (theirs === undefined || !this.started) return;
          const changes = withinFrame(this.o.replica.changesFor(theirs, this.batch));
          if (changes.length === 0) break;
          await this.o.transport.send(peer, encodeSync({ kind: 'changes', changes }));
          // Counted as theirs only once the link took them: a failed send is sent again.
          for (const c of changes) {
            const { a, s } = JSON.parse(c.b) as { a: string; s: number };
            theirs[a] = Math.max(theirs[a] ?? 0, s);
          }
          this.counters.sent += changes.length;
        }
      } while (this.again.has(peer));
    })()
      .catch((err: Error) => {
        // A stream of a closing connection failed while another may be open: try again shortly;
        // if the link is really down, link-down forgets the sibling and link-up starts over.
        this.o.log.debug({ peer, err: err.message }, 'sync pump stopped; retrying');
        const retry = setTimeout(() => this.known.has(peer) && this.pump(peer), RETRY_MS);
        retry.unref();
      })
      .finally(() => this.pumping.delete(peer));
    this.pumping.set(peer, run);
  }

  private async onFrame(from: AgentId, raw: Uint8Array): Promise<void> {
    if (!this.started) return;
    if (!this.o.isSibling(from)) {
      // A friend's agent has no business in our mailbox: dropped, counted, and never answered.
      this.refused({ reason: 'not-sibling-link', via: from });
      return;
    }
    let frame: SyncFrame;
    try {
      frame = decodeSync(raw);
    } catch (err) {
      this.refused({ reason: 'malformed', via: from });
      this.o.log.warn({ from, err: (err as Error).message }, 'dropped a malformed sync frame');
      return;
    }
    switch (frame.kind) {
      case 'vv':
        this.known.set(from, { ...frame.vv });
        this.pump(from);
        this.changed(); // what the sibling holds is news to `kith agent history`
        return;
      case 'changes':
        return this.onChanges(from, frame.changes);
      case 'want':
        return this.onWant(from, frame.hashes, false);
      case 'want-plain':
        return this.onWant(from, frame.hashes, true);
      case 'blob':
      case 'sealed':
        return this.onBlob(from, frame);
    }
  }

  private async onChanges(from: AgentId, changes: SignedChange[]): Promise<void> {
    const touched = emptyTouched();
    let gap = false;
    let applied = 0;
    this.o.replica.batch(() => {
      for (const change of changes) {
        const r: Received = this.o.replica.receive(change);
        if (r.result === 'applied') {
          applied++;
          mergeTouched(touched, r.touched);
          const known = this.known.get(from);
          if (known) known[r.body.a] = Math.max(known[r.body.a] ?? 0, r.body.s);
        } else if (r.result === 'duplicate') {
          this.counters.duplicate++;
        } else {
          if (r.reason === 'gap') gap = true;
          this.refused({ author: r.author, seq: r.seq, reason: r.reason, via: from });
        }
      }
    });
    this.counters.applied += applied;
    this.raiseRevocations(touched);
    // After a gap, and after a revocation op (changes of the revoked agent sent before it and
    // refused may be inside its bound): the sender starts over from what we really hold.
    if (gap || touched.revocations.length > 0)
      this.sendFrame(from, { kind: 'vv', vv: this.o.replica.versionVector() });
    if (applied === 0) return;
    await this.o.sink.applied(touched);
    // Gossip: siblings linked to us but not to the author get the change from us.
    this.pushAll();
    const missing = this.toRequest(false);
    if (missing.length) this.sendFrame(from, { kind: 'want', hashes: missing });
    this.changed();
  }

  /**
   * A revocation op bounds the revoked agent at what its author held of it. If we hold more
   * (changes we accepted before we knew), we record the same revocation bound at what we hold,
   * so no device ends refusing changes another keeps (change.ts standingOf).
   */
  private raiseRevocations(touched: Touched): void {
    const ops: Op[] = [];
    for (const agent of new Set(touched.revocations)) {
      const op = this.o.replica.revocationOp(agent as AgentId);
      if (op) ops.push(op);
    }
    if (ops.length) this.local(ops);
  }

  private async onWant(from: AgentId, hashes: string[], plainOnly: boolean): Promise<void> {
    for (const hash of hashes) {
      // A delivered message travels on as the ciphertext it came in; the sibling opens it itself.
      const sealed = plainOnly
        ? undefined
        : await this.o.sink.readSealed?.(hash, from).catch(() => undefined);
      if (sealed !== undefined) {
        await this.sendBlob(from, hash, sealed, 'sealed');
        continue;
      }
      const bytes = await this.o.sink.readBlob(hash);
      if (bytes === undefined) {
        const set = this.waiting.get(hash) ?? new Set();
        set.add(from);
        this.waiting.set(hash, set);
        continue;
      }
      await this.sendBlob(from, hash, bytes);
    }
  }

  private async sendBlob(
    peer: AgentId,
    hash: string,
    bytes: Buffer,
    kind: 'blob' | 'sealed' = 'blob',
  ): Promise<void> {
    try {
      for (let offset = 0; offset < bytes.length || offset === 0; offset += this.chunkBytes) {
        const part = bytes.subarray(offset, offset + this.chunkBytes);
        await this.o.transport.send(
          peer,
          encodeSync({ kind, hash, total: bytes.length, offset, bytes: part }),
        );
        if (bytes.length === 0) break;
      }
      if (kind === 'sealed') this.counters.sealedSent++;
      else this.counters.blobsSent++;
    } catch (err) {
      this.o.log.debug({ peer, hash, err: (err as Error).message }, 'sending a message to a sibling stopped');
    }
  }

  private async onBlob(from: AgentId, f: Extract<SyncFrame, { kind: 'blob' | 'sealed' }>): Promise<void> {
    if (f.total > this.maxBlobBytes) {
      this.refused({ reason: 'blob-too-large', via: from });
      return;
    }
    const key = `${f.kind}:${f.hash}`;
    let part = this.incoming.get(key);
    if (part === undefined || part.total !== f.total || f.offset === 0) {
      part = { total: f.total, parts: [], received: 0 };
      this.incoming.set(key, part);
    }
    if (f.offset !== part.received) return; // out of order: a resend starts at 0 again
    part.parts.push(Buffer.from(f.bytes));
    part.received += f.bytes.length;
    if (part.received < part.total) return;
    this.incoming.delete(key);
    let bytes: Buffer = Buffer.concat(part.parts);
    if (f.kind === 'sealed') {
      const opened = await this.o.sink.openSealed?.(f.hash, bytes).catch(() => undefined);
      if (opened === undefined || createHash('sha256').update(opened).digest('hex') !== f.hash) {
        // Not for our key, or it rebuilds other bytes (a file notice, another view of the sender):
        // the plain bytes come instead, so nothing is lost.
        this.counters.sealedFallback++;
        this.o.log.debug(
          { from, hash: f.hash },
          'a sealed message did not rebuild here: asking for its bytes',
        );
        this.sendFrame(from, { kind: 'want-plain', hashes: [f.hash] });
        return;
      }
      this.counters.sealedReceived++;
      bytes = opened;
    }
    if (createHash('sha256').update(bytes).digest('hex') !== f.hash) {
      this.refused({ reason: 'blob-hash-mismatch', via: from });
      return;
    }
    this.counters.blobsReceived++;
    this.requested.delete(f.hash);
    await this.o.sink.blobArrived(f.hash, bytes);
    // Requests go out 1,000 at a time: the next ones once most of these are here.
    if (this.requested.size < 200) {
      const more = this.toRequest(false);
      if (more.length) this.sendFrame(from, { kind: 'want', hashes: more });
    }
    const waiting = this.waiting.get(f.hash);
    this.waiting.delete(f.hash);
    for (const peer of waiting ?? []) await this.sendBlob(peer, f.hash, bytes);
    this.changed();
  }

  private refused(r: { author?: string; seq?: number; reason: string; via: AgentId }): void {
    this.counters.refused[r.reason] = (this.counters.refused[r.reason] ?? 0) + 1;
    if (r.reason !== 'gap') this.o.log.warn(r, 'refused a sync change');
    this.o.onRefused?.(r);
  }
}

/**
 * Bytes of changes one frame carries: a frame is at most MAX_FRAME_BYTES (1 MiB) and 200 changes
 * of 100 ops each (a mailbox recorded at start, bridge.ts) are several MiB, which the link refuses
 * whole: the pump then retried the same frame for ever and a new device never caught up.
 */
const FRAME_BUDGET = MAX_FRAME_BYTES - 64 * 1024;

/** The longest prefix of `changes` that fits one frame (at least one: a change is at most 256 KiB). */
function withinFrame(changes: SignedChange[]): SignedChange[] {
  let bytes = 2;
  for (let i = 0; i < changes.length; i++) {
    // As JSON: both strings escaped (a body's quotes double in size at most), keys and commas.
    bytes += 2 * changes[i].b.length + changes[i].g.length + 16;
    if (bytes > FRAME_BUDGET) return changes.slice(0, Math.max(1, i));
  }
  return changes;
}

function mergeTouched(into: Touched, from: Touched): void {
  for (const e of from.entries) into.entries.add(e);
  for (const c of from.contacts) into.contacts.add(c);
  into.folders ||= from.folders;
  into.revocations.push(...from.revocations);
}

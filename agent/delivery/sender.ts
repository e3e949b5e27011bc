import { createHash, type Hash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { KithError, isKithError } from '../../common/errors.ts';
import type { AgentId, MessageId } from '../../common/ids.ts';
import { CANCEL_INDEX, sealCancel } from '../payload/cancel.ts';
import { chunkLength, sealChunk } from '../payload/chunks.ts';
import type { PayloadCodec } from '../payload/codec.ts';
import type { PayloadSource } from '../payload/source.ts';
import type { Unit } from '../payload/unit.ts';
import { RejectReason, ReportKind } from '../reports/report.ts';
import type { Discovery } from '../routing/discovery.ts';
import { choosePath, type CachedPath } from '../routing/path-cache.ts';
import type { EngineContext } from './context.ts';
import { afterRejection, chunksInFlight, refusalText, rejectionText, waitAfterHeld } from './decide.ts';
import {
  dataChunks,
  hashUnitIndex,
  openSource,
  sealOutboxRecord,
  type OutboundPayload,
} from './outbox-record.ts';
import { Outcomes } from './outcomes.ts';
import { linkFirstHop, overlaps, usablePaths } from './path-choice.ts';
import type { Origin } from './relay.ts';
import { SentPackets, type PacketContext } from './sent-packets.ts';
import type { OutboxRecord } from './store.ts';

export type { OutboundPayload } from './outbox-record.ts';

interface Active {
  rec: OutboxRecord;
  source: PayloadSource;
  path?: CachedPath;
  nextChunk: number;
  /** Highest hop (1-based) known to have the current attempt's manifest. */
  reached: number;
  links: Set<string>;
  avoid: Set<AgentId>;
  stall?: NodeJS.Timeout;
  /** Index of the hop of the current attempt that reported "held" (-1: none). */
  heldHop: number;
  /** Paths whose recipient answered that the message arrived damaged. */
  rejectingPaths: Set<string>;
  pumping: boolean;
  busy: boolean;
  /** Chunks below this index were sent before (by any attempt since resume): a send of one is a re-send. */
  sentUpTo: number;
  /** The manifest goes flagged as a first contact (spam control's credit, docs/protocol.md 15.7). */
  firstContact: boolean;
  /** v3 manifest: the payload's SHA-256 so far, over chunks 0..hashedUpTo-1, in order. */
  hash: Hash;
  hashedUpTo: number;
  /** The whole payload's SHA-256 once every chunk was hashed: the hash unit's plaintext. */
  digest?: Buffer;
}

/**
 * The sender's side: seal the manifest, find a path (cache, else discovery), wrap and send the
 * manifest then the chunks in a window, follow reports, and on a stall move to an alternate path,
 * resuming from the last acknowledged chunk.
 */
export class Sender implements Origin {
  private readonly active = new Map<MessageId, Active>();
  private readonly packets: SentPackets;
  private readonly outcomes: Outcomes;
  private stopped = false;
  /** Shared bodies of wrap-once copies (7.8, v2) by file, the newest few: one read per post. */
  private readonly sharedBodies = new Map<string, Buffer>();

  constructor(
    private readonly ctx: EngineContext,
    private readonly codec: PayloadCodec,
    private readonly discovery: Discovery,
  ) {
    this.packets = new SentPackets(ctx);
    this.outcomes = new Outcomes(ctx);
  }

  /** Seals and stores a new message, then starts delivering it. Durable when it resolves. */
  async send(payload: OutboundPayload): Promise<void> {
    const rec = await this.prepare(payload);
    this.ctx.store.putOutbox(rec);
    void this.resume(payload.id);
  }

  /**
   * Everything send() does before the store: reads the payload, hashes it and seals the manifest.
   * Nothing is written, so the caller may store the record inside its own transaction
   * (store.putOutbox) and start delivery (resume) once that committed.
   */
  async prepare(payload: OutboundPayload): Promise<OutboxRecord> {
    const { ctx } = this;
    if (ctx.store.getOutbox(payload.id)) {
      throw new KithError('ERR_DUPLICATE_MESSAGE', `message ${payload.id} is already in the outbox`);
    }
    return sealOutboxRecord(ctx, this.codec, payload);
  }

  /** (Re)starts delivery of a stored pending message, e.g. after a restart. */
  async resume(id: MessageId): Promise<void> {
    if (this.stopped || this.active.has(id) || this.outcomes.waiting(id)) return;
    const rec = this.ctx.store.getOutbox(id);
    if (!rec || rec.state !== 'pending') return;
    let source: PayloadSource;
    try {
      source = await openSource(rec.source);
    } catch (err) {
      if (!isKithError(err, 'ERR_FILE_CHANGED')) throw err;
      // `kith send --file`'s file was replaced or changed while the node was down: fail it now,
      // and tell the recipient, which may hold part of it.
      if (this.outcomes.store(id, 'failed', err.message)) {
        await this.sendCancel(rec, undefined, err.message);
        this.outcomes.announce(id, 'failed', err.message);
      }
      return;
    }
    // Asked twice at once (send()'s own resume and the outbox job's): the one that got here second
    // closes its file and leaves. Without this it replaced the first in `active`, whose file
    // handle was then never closed (Node closed it at GC, warning "Closing file descriptor N on
    // garbage collection": seen in bench/soak) and whose attempt ran beside the second.
    if (this.stopped || this.active.has(id)) {
      await source.close();
      return;
    }
    const a: Active = {
      rec,
      source,
      nextChunk: rec.acked,
      reached: 0,
      links: new Set(),
      avoid: new Set(),
      rejectingPaths: new Set(),
      heldHop: -1,
      pumping: false,
      busy: false,
      sentUpTo: rec.acked,
      firstContact: this.ctx.spam?.flagsFirstContact?.(rec.to) === true,
      hash: createHash('sha256'),
      hashedUpTo: 0,
    };
    this.active.set(id, a);
    await this.attempt(a);
  }

  /** Messages being delivered now. */
  activeIds(): MessageId[] {
    return [...this.active.keys()];
  }

  /** A link came up: messages waiting for a path try again. */
  linkUp(): void {
    for (const a of this.active.values()) if (!a.path && !a.busy) void this.attempt(a);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.outcomes.stop();
    for (const a of this.active.values()) {
      clearTimeout(a.stall);
      await a.source.close().catch(() => undefined);
    }
    this.active.clear();
    this.packets.clear();
  }

  private async attempt(a: Active): Promise<void> {
    const { ctx } = this;
    if (this.stopped || a.busy) return;
    if (ctx.now() > a.rec.deadline) return this.finish(a, 'failed', 'no delivery before the deadline');
    a.busy = true;
    const to = a.rec.to;
    const known = () => usablePaths(ctx, this.discovery, to);
    let unreachable = false;
    try {
      await linkFirstHop(ctx, this.discovery, to, a.avoid);
      if (this.stopped || !this.active.has(a.rec.id)) return;
      let path = choosePath(known(), a.avoid);
      if (!path || path.failures > 0 || overlaps(path, a.avoid)) {
        await this.discovery.find(to);
        path = choosePath(known(), a.avoid);
      }
      if (this.stopped || !this.active.has(a.rec.id)) return;
      a.path = path;
      a.reached = 0;
      a.heldHop = -1;
      a.nextChunk = a.rec.acked;
      if (!path) {
        ctx.emit({ kind: 'stalled', id: a.rec.id, at: ctx.now(), lastHop: 0, action: 'waiting for a path' });
        this.armStall(a);
        return;
      }
      ctx.count('attempts');
      this.armStall(a);
      await this.sendUnit(
        a,
        { kind: 'manifest', id: Buffer.from(a.rec.id, 'hex'), sealed: await this.manifestOf(a.rec) },
        true,
      );
    } catch (err) {
      ctx.logger.debug({ err: (err as Error).message }, 'first hop unreachable');
      unreachable = true;
    } finally {
      a.busy = false;
    }
    if (unreachable) this.firstHopDown(a);
  }

  /** The sealed manifest to send: the record's, or for a wrap-once copy its head ‖ the shared body. */
  private async manifestOf(rec: OutboxRecord): Promise<Buffer> {
    if (!rec.sharedBody) return rec.sealedManifest;
    let body = this.sharedBodies.get(rec.sharedBody);
    if (!body) {
      body = await readFile(rec.sharedBody);
      if (this.sharedBodies.size >= 8) this.sharedBodies.delete(this.sharedBodies.keys().next().value!);
      this.sharedBodies.set(rec.sharedBody, body);
    }
    return Buffer.concat([rec.sealedManifest, body]);
  }

  /** The first hop refused the packet: try a fresh alternative at once, else wait for the stall timer. */
  private firstHopDown(a: Active): void {
    const { ctx } = this;
    ctx.count('first_hop_unreachable');
    if (!a.path) return;
    // Tell the sender's tracking why the path changes (as a stall does).
    ctx.emit({ kind: 'stalled', id: a.rec.id, at: ctx.now(), lastHop: a.reached, action: 'alternate path' });
    this.discovery.cache.fail(a.rec.to, a.path.agents);
    a.avoid.add(a.path.agents[0]);
    a.path = undefined;
    const next = choosePath(usablePaths(ctx, this.discovery, a.rec.to), a.avoid);
    if (next && next.failures === 0 && !overlaps(next, a.avoid)) setImmediate(() => void this.attempt(a));
    else this.armStall(a);
  }

  private armStall(a: Active, ms = this.ctx.options.stallTimeoutMs): void {
    clearTimeout(a.stall);
    if (this.stopped) return;
    a.stall = setTimeout(() => this.onStall(a), ms);
  }

  private onStall(a: Active): void {
    const { ctx } = this;
    clearTimeout(a.stall);
    if (this.stopped || !this.active.has(a.rec.id)) return;
    if (a.path) {
      ctx.count('stalled');
      this.abandonPath(a);
    } else {
      a.avoid.clear();
      void this.attempt(a);
    }
  }

  /** Counts a failure against the current path, avoids its relays and tries another path. */
  private abandonPath(a: Active, reason?: string): void {
    const { ctx } = this;
    if (!a.path) return;
    clearTimeout(a.stall);
    this.discovery.cache.fail(a.rec.to, a.path.agents);
    // The hop after the last one that reported is the likeliest culprit; avoid the whole path's relays.
    for (const agent of a.path.agents.slice(0, -1)) a.avoid.add(agent);
    ctx.emit({
      kind: 'stalled',
      id: a.rec.id,
      at: ctx.now(),
      lastHop: a.reached,
      action: 'alternate path',
      ...(reason ? { reason } : {}),
    });
    a.path = undefined;
    void this.attempt(a);
  }

  /** The recipient refused the message: final, or a damaged copy that another path may bring intact. */
  private onRejected(a: Active, p: PacketContext, current: boolean, reason: number): void {
    const { ctx } = this;
    if (reason === RejectReason.firstContactUnflagged && !a.firstContact) {
      // The recipient does not know us: send it again at once, flagged as a first contact.
      ctx.count('first_contact_reflagged');
      a.firstContact = true;
      if (!current) return;
      clearTimeout(a.stall);
      a.path = undefined;
      void this.attempt(a);
      return;
    }
    a.rejectingPaths.add(p.agents.join(','));
    if (afterRejection(reason, a.rejectingPaths.size - 1) === 'final') {
      void this.finish(a, 'failed', rejectionText(reason));
      return;
    }
    ctx.count('rejected_on_path');
    // The recipient discards a damaged assembly: start the chunks again (its ack on the next
    // manifest tells where it really stands).
    if (a.rec.acked > 0) {
      a.rec.acked = 0;
      ctx.store.updateOutbox(a.rec.id, { acked: 0 });
    }
    if (current) this.abandonPath(a);
    else this.discovery.cache.fail(a.rec.to, p.agents);
  }

  private async sendUnit(a: Active, unit: Unit, reportAll: boolean, chunk?: number): Promise<void> {
    const path = a.path;
    if (!path) return;
    // Only the manifest is the first contact (spam control's credit); its chunks follow it.
    const first = a.firstContact && unit.kind === 'manifest';
    const { link, frame } = this.packets.wrap(a.rec.id, path, a.rec.deadline, unit, reportAll, chunk, first);
    a.links.add(link);
    await this.ctx.transport.send(path.entries[0].agent, frame);
    this.ctx.count('packets_sent');
  }

  private async pump(a: Active): Promise<void> {
    if (a.pumping) return;
    a.pumping = true;
    const window = chunksInFlight(a.rec.chunkSize, this.ctx.options.window);
    const { rec } = a;
    try {
      while (
        a.path &&
        a.nextChunk < rec.chunks &&
        a.nextChunk < rec.acked + window &&
        this.active.has(rec.id)
      ) {
        const index = a.nextChunk++;
        const data = await this.unitData(a, index);
        if (data === undefined) return; // stopped, or the message ended meanwhile
        const idBuf = Buffer.from(rec.id, 'hex');
        // A v3 hash unit is sealed as chunk `chunks` of `chunks`: the AAD keeps it apart from them.
        const sealed = sealChunk(rec.contentKey, idBuf, index, dataChunks(rec), data);
        await this.sendUnit(a, { kind: 'chunk', id: idBuf, index, sealed }, false, index);
        // What a cut link, a restart or a damaged copy cost: chunks sent again (bytes too).
        if (index < a.sentUpTo) {
          this.ctx.count('chunks_resent');
          this.ctx.count('chunk_bytes_resent', data.length);
        } else a.sentUpTo = index + 1;
      }
    } catch (err) {
      a.pumping = false;
      // A file sent in place changed under us (payload/source.ts): what is left of it is not what
      // the manifest describes, so the message fails (status email) instead of sending it.
      if (isKithError(err, 'ERR_FILE_CHANGED')) void this.finish(a, 'failed', err.message);
      else this.firstHopDown(a);
    } finally {
      a.pumping = false;
    }
  }

  /**
   * The plaintext of unit `index`: a chunk of the payload, or (v3) the hash unit, the payload's
   * SHA-256. The hash is kept up to date as chunks are read in order; a chunk further on than the
   * hash (after a restart, or a recipient that holds more than we knew) first hashes the chunks
   * before it, read again from the source. Undefined when the message is no longer active.
   */
  private async unitData(a: Active, index: number): Promise<Buffer | undefined> {
    const { rec } = a;
    const hashAt = hashUnitIndex(rec);
    const read = async (i: number) => {
      const data = await a.source.read(i * rec.chunkSize, chunkLength(rec.size, rec.chunkSize, i));
      // How far into a payload the sender has read (test/streams/in-place: not the end, yet).
      this.ctx.count('payload_bytes_read', data.length);
      return data;
    };
    const live = () => !this.stopped && this.active.get(rec.id) === a;
    if (hashAt === undefined) return read(index);
    while (a.hashedUpTo < Math.min(index, hashAt)) {
      const data = await read(a.hashedUpTo);
      if (!live()) return undefined;
      this.hashChunk(a, data);
    }
    if (index === hashAt) {
      a.digest ??= a.hash.digest();
      return a.digest;
    }
    const data = await read(index);
    if (index === a.hashedUpTo && live()) this.hashChunk(a, data);
    return live() ? data : undefined;
  }

  private hashChunk(a: Active, data: Buffer): void {
    a.hash.update(data);
    a.hashedUpTo++;
    this.ctx.count('payload_bytes_hashed', data.length);
  }

  owns(link: string): boolean {
    return this.packets.has(link);
  }

  onReport(link: string, sealed: Buffer): void {
    const opened = this.packets.openReport(link, sealed);
    if (!opened) return;
    const { packet: p, hop, report } = opened;
    const a = this.active.get(p.id);
    if (a) this.onHopReport(a, p, link, hop, report.kind, report.value, report.at);
  }

  private onHopReport(
    a: Active,
    p: PacketContext,
    link: string,
    hop: number,
    kind: ReportKind,
    value: number,
    at: number,
  ): void {
    const { ctx } = this;
    const last = hop === p.secrets.length - 1;
    const current = a.path && a.path.agents === p.agents;
    if (current && hop + 1 > a.reached && (kind === ReportKind.forwarded || last)) {
      for (let h = a.reached + 1; h <= hop + 1; h++) {
        ctx.emit({
          kind: 'progress',
          id: a.rec.id,
          at,
          hop: h,
          hops: p.agents.length,
          agent: p.agents[h - 1],
        });
      }
      a.reached = hop + 1;
    }
    switch (kind) {
      case ReportKind.forwarded:
        // A late "forwarded" from before the holding hop must not cut the longer wait short.
        if (current && hop >= a.heldHop) this.armStall(a);
        return;
      case ReportKind.held:
        ctx.emit({ kind: 'held', id: a.rec.id, at, hop: hop + 1, agent: p.agents[hop] });
        // Progress, not a stall: the hop hands it on (and reports "forwarded") when it can.
        if (current) {
          a.heldHop = Math.max(a.heldHop, hop);
          this.armStall(a, waitAfterHeld(ctx.options.stallTimeoutMs));
        }
        return;
      case ReportKind.chunkAck:
        if (!last) return;
        if (p.chunk !== undefined) this.packets.delete(link);
        if (value > a.rec.acked) {
          a.rec.acked = Math.min(value, a.rec.chunks);
          ctx.store.updateOutbox(a.rec.id, { acked: a.rec.acked });
          // In the payload's chunks: a v3 hash unit is not one (the bar is full once they are all stored).
          const total = dataChunks(a.rec);
          ctx.emit({ kind: 'chunks', id: a.rec.id, at, acked: Math.min(a.rec.acked, total), total });
        }
        if (current) {
          this.armStall(a);
          a.nextChunk = Math.max(a.nextChunk, a.rec.acked);
          void this.pump(a);
        }
        return;
      case ReportKind.delivered:
        if (last) void this.finish(a, 'delivered');
        return;
      case ReportKind.rejected:
        if (last) this.onRejected(a, p, current === true, value);
        return;
      case ReportKind.refused:
        // A relay refused it under a spam limit: another path now (or later), with the reason.
        ctx.count('refused_on_path');
        if (current && !last) this.abandonPath(a, refusalText(value, p.agents[hop], hop + 1));
        return;
      default:
        ctx.count('rejected_report_unknown_kind');
    }
  }

  onComplaint(link: string): void {
    const p = this.packets.get(link);
    this.ctx.count('complaints_received');
    if (p) this.ctx.emit({ kind: 'complained', id: p.id, at: this.ctx.now(), link });
  }

  private async finish(a: Active, state: 'delivered' | 'failed', reason = ''): Promise<void> {
    if (this.active.get(a.rec.id) !== a) return;
    clearTimeout(a.stall);
    this.active.delete(a.rec.id);
    const stored = await this.outcomes.storeDurable(a.rec.id, state, reason);
    // Keep manifest contexts a little for late reports and complaints; chunk contexts go now.
    for (const link of a.links) if (this.packets.get(link)?.chunk !== undefined) this.packets.delete(link);
    await a.source.close().catch(() => undefined);
    if (stored && state === 'failed') await this.sendCancel(a.rec, a.path, reason);
    if (stored) this.outcomes.announce(a.rec.id, state, reason);
  }

  /**
   * Tells the recipient of a chunked message we gave up on that it will never be completed (the
   * cancel unit, docs/protocol.md 7.9), so it frees its spool and its link answers "Gone" instead
   * of waiting for good. Sent once, along the current path or the best known one; when it is
   * lost the recipient's idle expiry (delivery.inboundIdleMs) ends the transfer instead.
   */
  private async sendCancel(
    rec: OutboxRecord,
    current: CachedPath | undefined,
    reason: string,
  ): Promise<void> {
    const { ctx } = this;
    if (rec.chunks === 0 || this.stopped) return;
    const path = current ?? choosePath(usablePaths(ctx, this.discovery, rec.to), new Set());
    if (!path) return ctx.count('cancel_no_path');
    const id = Buffer.from(rec.id, 'hex');
    const sealed = sealCancel(rec.contentKey, id, dataChunks(rec), reason);
    // Its own lifetime: the message's deadline may be what just passed.
    const expires = ctx.now() + ctx.options.maxHoldMs;
    const unit: Unit = { kind: 'chunk', id, index: CANCEL_INDEX, sealed };
    const { link, frame } = this.packets.wrap(rec.id, path, expires, unit, false, CANCEL_INDEX);
    try {
      await ctx.transport.send(path.entries[0].agent, frame);
      ctx.count('cancels_sent');
    } catch (err) {
      ctx.count('cancel_send_failed');
      ctx.logger.debug({ id: rec.id, err: (err as Error).message }, 'cancel not sent');
    } finally {
      this.packets.delete(link);
    }
  }
}

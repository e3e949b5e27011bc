import { createHash, randomBytes } from 'node:crypto';
import { KithError } from '../../common/errors.ts';
import type { AgentId, Fingerprint, MessageId } from '../../common/ids.ts';
import { signWith } from '../onion/keys.ts';
import { buildOnion, type HopInstruction, type HopSecret } from '../onion/layers.ts';
import { CHUNK_BYTES, INLINE_MAX, chunkLength, sealChunk } from '../payload/chunks.ts';
import type { PayloadCodec } from '../payload/codec.ts';
import { encodeManifest, type Manifest } from '../payload/manifest.ts';
import { bytesSource, fileSource, type PayloadSource } from '../payload/source.ts';
import { MAX_BODY, encodeUnit, type Unit } from '../payload/unit.ts';
import { ReportKind, openReport } from '../reports/report.ts';
import type { Discovery } from '../routing/discovery.ts';
import { choosePath, type CachedPath } from '../routing/path-cache.ts';
import type { EngineContext } from './context.ts';
import { afterRejection, chunksInFlight, firstHopsToDial, rejectionText, waitAfterHeld } from './decide.ts';
import { encodeOnion, hopDigest, linkId } from './frames.ts';
import type { Origin } from './relay.ts';
import type { OutboxRecord } from './store.ts';

// Packets whose reports may still come back. 10,000 like the receiver's way back (receiver.ts):
// at 100,000 it held ~31 MiB per sending agent in the soak (bench/RESULTS.md 9). A context
// dropped here is what a restart drops too: the outbox re-sends after its stall timeout, and the
// recipient's exactly-once store drops the second copy.
const MAX_PACKETS = 10_000;

/** What the sender remembers of one packet it sent, to read the reports that come back. */
interface PacketContext {
  id: MessageId;
  agents: AgentId[];
  pubs: Buffer[];
  secrets: HopSecret[];
  chunk?: number;
}

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
}

/** What a caller hands to send(). */
export interface OutboundPayload {
  id: MessageId;
  to: Fingerprint;
  /** A file that stays until delivery ends (mail: the RFC 5322 message), or bytes. */
  source: { kind: 'file'; path: string } | { kind: 'bytes'; data: Buffer };
}

/**
 * The sender's side: seal the manifest, find a path (cache, else discovery), wrap and send the
 * manifest then the chunks in a window, follow reports, and on a stall move to an alternate path,
 * resuming from the last acknowledged chunk.
 */
export class Sender implements Origin {
  private readonly active = new Map<MessageId, Active>();
  private readonly packets = new Map<string, PacketContext>();
  /** Messages whose outcome is known but not yet stored (storeOutcome), with the retry timer. */
  private readonly unstored = new Map<MessageId, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly ctx: EngineContext,
    private readonly codec: PayloadCodec,
    private readonly discovery: Discovery,
  ) {}

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
    const source =
      payload.source.kind === 'file'
        ? await fileSource(payload.source.path)
        : bytesSource(payload.source.data);
    try {
      const contentKey = randomBytes(32);
      const inline = source.size <= INLINE_MAX;
      const body = inline ? await source.read(0, source.size) : undefined;
      const manifest: Manifest = {
        v: 1,
        id: payload.id,
        from: ctx.trust.self,
        to: payload.to,
        size: source.size,
        chunkSize: inline ? 0 : CHUNK_BYTES,
        chunks: inline ? 0 : Math.ceil(source.size / CHUNK_BYTES),
        contentKey: contentKey.toString('base64url'),
        // An inline payload is read once and hashed from memory: no second pass over the file.
        sha256: body ? createHash('sha256').update(body).digest('hex') : await source.sha256(),
      };
      const plain = encodeManifest(manifest, body);
      const sealedManifest = await this.codec.seal(plain, payload.to);
      if (sealedManifest.length + 21 > MAX_BODY)
        throw new KithError('ERR_MANIFEST_TOO_LARGE', 'sealed manifest too large');
      const now = ctx.now();
      return {
        id: payload.id,
        to: payload.to,
        source: payload.source,
        size: source.size,
        sealedManifest,
        contentKey,
        chunks: manifest.chunks,
        chunkSize: manifest.chunkSize,
        acked: 0,
        state: 'pending',
        createdAt: now,
        deadline: now + ctx.options.maxAgeMs,
      };
    } finally {
      await source.close();
    }
  }

  /** (Re)starts delivery of a stored pending message, e.g. after a restart. */
  async resume(id: MessageId): Promise<void> {
    if (this.stopped || this.active.has(id) || this.unstored.has(id)) return;
    const rec = this.ctx.store.getOutbox(id);
    if (!rec || rec.state !== 'pending') return;
    const source =
      rec.source.kind === 'file' ? await fileSource(rec.source.path) : bytesSource(rec.source.data);
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
    for (const timer of this.unstored.values()) clearTimeout(timer);
    this.unstored.clear();
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
    const known = () => this.usablePaths(to);
    let unreachable = false;
    try {
      await this.linkFirstHop(to, a.avoid);
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
        { kind: 'manifest', id: Buffer.from(a.rec.id, 'hex'), sealed: a.rec.sealedManifest },
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

  /**
   * Opens the link a path needs when none of the candidate first hops is linked (decide.ts,
   * `firstHopsToDial`): tries them in turn until one links. Candidates are the first hops of the
   * cached paths to `to` and the recipient's agents we may link with directly.
   */
  private async linkFirstHop(to: Fingerprint, avoid: ReadonlySet<AgentId>): Promise<void> {
    const { ctx } = this;
    if (!ctx.connect) return;
    const up = new Set(ctx.transport.neighbours());
    const candidates = [
      ...this.discovery.cache
        .get(to)
        .filter((p) => p.failures === 0)
        .map((p) => p.agents[0]),
      ...ctx.trust.relayTargets(to).map((t) => t.agent),
    ].filter((agent) => !ctx.trust.isRevoked(agent));
    for (const agent of firstHopsToDial(candidates, (x) => up.has(x), avoid)) {
      try {
        await ctx.connect(agent);
        ctx.count('first_hop_dialled');
        return;
      } catch (err) {
        ctx.logger.debug({ agent, err: (err as Error).message }, 'could not link with a first hop');
      }
    }
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
    const next = choosePath(this.usablePaths(a.rec.to), a.avoid);
    if (next && next.failures === 0 && !overlaps(next, a.avoid)) setImmediate(() => void this.attempt(a));
    else this.armStall(a);
  }

  /**
   * Paths to `to` this agent may use now: linked agents of the recipient, then cached paths, none
   * through an agent revoked since the path was learned (those are dropped from the cache).
   */
  private usablePaths(to: Fingerprint): CachedPath[] {
    const revoked = (agent: AgentId) => this.ctx.trust.isRevoked(agent);
    if (this.discovery.cache.dropWhere(revoked) > 0) this.ctx.count('paths_dropped_revoked');
    return [...this.discovery.localPaths(to), ...this.discovery.cache.get(to)].filter(
      (p) => !p.agents.some(revoked),
    );
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
  private abandonPath(a: Active): void {
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
    });
    a.path = undefined;
    void this.attempt(a);
  }

  /** The recipient refused the message: final, or a damaged copy that another path may bring intact. */
  private onRejected(a: Active, p: PacketContext, current: boolean, reason: number): void {
    const { ctx } = this;
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
    const entries = path.entries;
    // Relays refuse packets valid for longer than their maxHoldMs; a re-send makes a fresh packet.
    const expiresAt = Math.min(a.rec.deadline, this.ctx.now() + this.ctx.options.maxHoldMs);
    const hops = entries.map((e, i) => {
      const instruction: HopInstruction =
        i < entries.length - 1
          ? { kind: 'forward', next: entries[i + 1].signPublic, report: reportAll, expiresAt }
          : { kind: 'deliver', report: true, expiresAt };
      return { onionPublic: e.onionKey, instruction };
    });
    const { header, body, secrets } = buildOnion(hops, encodeUnit(unit));
    const sig = signWith(this.ctx.keys, hopDigest(entries[0].signPublic, header, body));
    const link = linkId(header);
    this.packets.set(link, {
      id: a.rec.id,
      agents: path.agents,
      pubs: entries.map((e) => e.signPublic),
      secrets,
      chunk,
    });
    a.links.add(link);
    if (this.packets.size > MAX_PACKETS) this.packets.delete(this.packets.keys().next().value as string);
    await this.ctx.transport.send(entries[0].agent, encodeOnion(header, body, sig));
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
        const data = await a.source.read(index * rec.chunkSize, chunkLength(rec.size, rec.chunkSize, index));
        const idBuf = Buffer.from(rec.id, 'hex');
        const sealed = sealChunk(rec.contentKey, idBuf, index, rec.chunks, data);
        await this.sendUnit(a, { kind: 'chunk', id: idBuf, index, sealed }, false, index);
        // What a cut link, a restart or a damaged copy cost: chunks sent again (bytes too).
        if (index < a.sentUpTo) {
          this.ctx.count('chunks_resent');
          this.ctx.count('chunk_bytes_resent', data.length);
        } else a.sentUpTo = index + 1;
      }
    } catch {
      a.pumping = false;
      this.firstHopDown(a);
    } finally {
      a.pumping = false;
    }
  }

  owns(link: string): boolean {
    return this.packets.has(link);
  }

  onReport(link: string, sealed: Buffer): void {
    const { ctx } = this;
    const p = this.packets.get(link);
    if (!p) return;
    for (let i = p.secrets.length - 1; i >= 0; i--) {
      let report;
      try {
        report = openReport(ctx.verifier, p.pubs[i], p.secrets[i], sealed);
      } catch {
        return ctx.count('rejected_report_forged');
      }
      if (!report) continue;
      ctx.count('reports_received');
      const a = this.active.get(p.id);
      if (a) this.onHopReport(a, p, link, i, report.kind, report.value, report.at);
      return;
    }
    ctx.count('rejected_report_undecryptable');
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
          ctx.emit({ kind: 'chunks', id: a.rec.id, at, acked: a.rec.acked, total: a.rec.chunks });
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
    const stored = this.storeOutcome(a.rec.id, state, reason);
    // Keep manifest contexts a little for late reports and complaints; chunk contexts go now.
    for (const link of a.links) if (this.packets.get(link)?.chunk !== undefined) this.packets.delete(link);
    await a.source.close().catch(() => undefined);
    if (stored) this.announce(a.rec.id, state, reason);
  }

  /**
   * Stores a message's outcome; false when that failed (a full disk: SQLITE_FULL), and then it is
   * tried again with backoff and announced once stored. Why not throw: finish() runs from a report
   * handler as `void`, so the error killed the node (an unhandled rejection, test/faults/disk-full);
   * why not forget it: the message would stay pending, with no status email, until the next start.
   * Meanwhile resume() leaves it alone, so nothing is sent again; if the node stops first, the
   * next start resumes it and the recipient's duplicate check answers "delivered" again.
   */
  private storeOutcome(id: MessageId, state: 'delivered' | 'failed', reason: string, attempt = 0): boolean {
    const { ctx } = this;
    try {
      ctx.store.updateOutbox(id, { state });
      this.unstored.delete(id);
      return true;
    } catch (err) {
      ctx.count('outcome_not_stored');
      ctx.logger.warn(
        { id, state, attempt, err: (err as Error).message },
        'could not store a delivery outcome',
      );
      const retry = setTimeout(
        () => {
          if (!this.stopped && this.storeOutcome(id, state, reason, attempt + 1))
            this.announce(id, state, reason);
        },
        Math.min(500 * 2 ** attempt, 30_000),
      );
      this.unstored.set(id, retry);
      return false;
    }
  }

  private announce(id: MessageId, state: 'delivered' | 'failed', reason: string): void {
    const { ctx } = this;
    ctx.count(state === 'delivered' ? 'messages_delivered' : 'messages_failed');
    if (state === 'delivered') ctx.emit({ kind: 'delivered', id, at: ctx.now() });
    else ctx.emit({ kind: 'failed', id, at: ctx.now(), reason });
  }
}

function overlaps(path: CachedPath, avoid: ReadonlySet<AgentId>): boolean {
  return path.agents.some((agent) => avoid.has(agent));
}

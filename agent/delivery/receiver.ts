import { createHash } from 'node:crypto';
import type { AgentId, MessageId } from '../../common/ids.ts';
import { isKithError, KithError } from '../../common/errors.ts';
import type { HopSecret } from '../onion/layers.ts';
import { CANCEL_INDEX, openCancel } from '../payload/cancel.ts';
import { chunkLength, openChunk } from '../payload/chunks.ts';
import type { PayloadCodec } from '../payload/codec.ts';
import {
  decodeAnyManifest,
  decodeManifest,
  encodeManifest,
  unitCount,
  type Manifest,
} from '../payload/manifest.ts';
import { hashFile } from '../payload/source.ts';
import { ChunkBitmap, removeSpool, spoolPath, writeChunk } from '../payload/spool.ts';
import { stat } from 'node:fs/promises';
import { decodeUnit } from '../payload/unit.ts';
import { RejectReason, ReportKind } from '../reports/report.ts';
import type { DeliverySink, EngineContext } from './context.ts';
import { rejectName } from './relay.ts';

type Reply = (kind: ReportKind, value?: number) => void;

/**
 * Largest inbound payload by default: 4 GiB of content and its framing. Why the allowance: a
 * 4 GiB file travels with its KITH-FILE header line, a linked attachment with its mail's stub (at
 * most 32 MiB, gateway/streams/split.ts), and a flat 4 GiB refused exactly the file the issue
 * names (bench/streams/big.ts found it).
 */
export const MAX_INBOUND_DEFAULT = 4 * 1024 ** 3 + 33 * 1024 ** 2;

/**
 * A transfer that stores no chunk for this long is ended as expired (delivery.inboundIdleMs):
 * a sender that died for good never sends its cancel. Generous, since a sender may be offline
 * for days and resume: a week.
 */
export const INBOUND_IDLE_DEFAULT = 7 * 24 * 3_600_000;

/** setTimeout's longest delay; a longer idle limit is checked again when it fires. */
const MAX_TIMER = 2 ** 31 - 1;

interface Assembly {
  manifest: Manifest;
  key: Buffer;
  bitmap: ChunkBitmap;
  path: string;
}

/**
 * The recipient's side: open the unit, check the manifest (for us, signed by whom), assemble
 * chunks in the spool file, hand the message to the sink exactly once, and only then report
 * "delivered".
 */
export class Receiver {
  /**
   * Message ids claimed by a manifest being opened or a message being handed to the sink. Claimed
   * before the (slow) open: a second copy of the manifest, re-sent along another path after a
   * stall, must not start a second open and hand-off of the same message.
   */
  private readonly delivering = new Set<MessageId>();
  private readonly assemblies = new Map<MessageId, Assembly>();
  /** Neighbour and link id of each recent message's manifest packet: where a complaint goes. */
  private readonly links = new Map<MessageId, { from: AgentId; inId: string }>();
  /** Transfers being assembled: when a chunk was last stored (wall clock ms) and the idle timer. */
  private readonly idle = new Map<MessageId, { last: number; timer: NodeJS.Timeout }>();

  constructor(
    private readonly ctx: EngineContext,
    private readonly codec: PayloadCodec,
    private readonly sink: DeliverySink,
    private readonly report: (
      to: AgentId,
      link: string,
      secret: HopSecret,
      kind: ReportKind,
      value?: number,
    ) => void,
  ) {}

  /**
   * Arms the idle expiry of every transfer still being assembled (after a restart): its last
   * progress is its spool file's modification time (the last chunk written), else now.
   */
  async start(): Promise<void> {
    const dir = this.ctx.options.spoolDir;
    if (!dir) return;
    for (const id of this.ctx.store.inboundIds()) {
      const last = await stat(spoolPath(dir, id)).then(
        (s) => s.mtimeMs,
        () => Date.now(),
      );
      this.touch(id, last);
    }
  }

  /** Stops the idle timers (the transfers stay in the store). */
  stop(): void {
    for (const { timer } of this.idle.values()) clearTimeout(timer);
    this.idle.clear();
  }

  private idleMs(): number {
    return this.ctx.options.inboundIdleMs ?? INBOUND_IDLE_DEFAULT;
  }

  /** Records progress on a transfer (a chunk stored, or it began), arming its idle timer once. */
  private touch(id: MessageId, at = Date.now()): void {
    const known = this.idle.get(id);
    if (known) {
      known.last = at;
      return;
    }
    const entry = { last: at, timer: undefined as unknown as NodeJS.Timeout };
    const arm = () => {
      const left = entry.last + this.idleMs() - Date.now();
      if (left > 0) {
        entry.timer = setTimeout(arm, Math.min(left, MAX_TIMER));
        entry.timer.unref();
        return;
      }
      void this.end(id, 'expired', `no part of it arrived for ${describeMs(this.idleMs())}`);
    };
    this.idle.set(id, entry);
    arm();
  }

  /**
   * Ends a transfer that will never complete (its sender's cancel, or the idle expiry): the spool
   * and the stored assembly go, and the sink hears why (its link answers "Gone" from now on).
   * A transfer being handed to the sink (every unit stored) is left to finish.
   */
  private async end(id: MessageId, how: 'cancelled' | 'expired', reason: string): Promise<void> {
    const { ctx } = this;
    const entry = this.idle.get(id);
    if (entry) clearTimeout(entry.timer);
    this.idle.delete(id);
    if (this.delivering.has(id) || !ctx.options.spoolDir) return;
    this.assemblies.delete(id);
    ctx.store.deleteInbound(id);
    await removeSpool(spoolPath(ctx.options.spoolDir, id));
    ctx.count(how === 'cancelled' ? 'transfers_cancelled' : 'transfers_expired');
    ctx.logger.info({ id, how, reason }, 'an incomplete transfer ended');
    this.sink.onTransferEnded?.(id, { how, reason });
  }

  /** Where a complaint about a received message goes (undefined once forgotten). */
  linkOf(id: MessageId): { from: AgentId; inId: string } | undefined {
    return this.links.get(id);
  }

  async onUnit(packet: {
    from: AgentId;
    inId: string;
    secret: HopSecret;
    body: Buffer;
    firstContact?: boolean;
  }): Promise<void> {
    const { ctx } = this;
    const reply: Reply = (kind, value = 0) =>
      this.report(packet.from, packet.inId, packet.secret, kind, value);
    let unit;
    try {
      unit = decodeUnit(packet.body);
    } catch {
      ctx.count('rejected_unit_malformed');
      return reply(ReportKind.rejected, RejectReason.corrupt);
    }
    const id = unit.id.toString('hex') as MessageId;
    if (ctx.store.isDelivered(id)) {
      ctx.count('duplicate_message');
      return reply(ReportKind.delivered);
    }
    try {
      if (unit.kind === 'manifest') await this.onManifest(id, unit.sealed, packet, reply);
      else await this.onChunk(id, unit.index, unit.sealed, reply);
    } catch (err) {
      if (!isKithError(err)) throw err;
      ctx.count(rejectName(err.code));
      ctx.logger.debug({ code: err.code }, 'inbound unit rejected');
    }
  }

  private async onManifest(
    id: MessageId,
    sealed: Buffer,
    packet: { from: AgentId; inId: string; firstContact?: boolean },
    reply: Reply,
  ): Promise<void> {
    const { ctx } = this;
    if (this.links.size >= 10_000) this.links.delete(this.links.keys().next().value as MessageId);
    this.links.set(id, { from: packet.from, inId: packet.inId });
    if (this.delivering.has(id)) return ctx.count('duplicate_message');
    this.delivering.add(id);
    try {
      await this.openManifest(id, sealed, packet, reply);
    } finally {
      this.delivering.delete(id);
    }
  }

  /** onManifest with the message id claimed. */
  private async openManifest(
    id: MessageId,
    sealed: Buffer,
    packet: { from: AgentId; inId: string; firstContact?: boolean },
    reply: Reply,
  ): Promise<void> {
    const { ctx } = this;
    const existing = this.assembly(id);
    if (existing) {
      // A resumed or re-routed transfer: tell the sender where to continue.
      ctx.count('duplicate_manifest');
      const rec = ctx.store.getInbound(id);
      if (rec) ctx.store.putInbound({ ...rec, from: packet.from, inId: packet.inId });
      const done = existing.bitmap.contiguous();
      if (done < unitCount(existing.manifest)) return reply(ReportKind.chunkAck, done);
      // Every unit is here but the message is not delivered: a crash (kill -9) came between the
      // last unit and the hand-off, or the hand-off failed. The sender has nothing left to send
      // but this manifest, so completing only on a chunk left both sides waiting for good.
      ctx.count('completed_on_manifest');
      return this.complete(id, existing, reply);
    }
    let opened;
    try {
      opened = await this.codec.open(sealed);
    } catch (err) {
      reply(ReportKind.rejected, RejectReason.undecryptable);
      throw err;
    }
    let decoded;
    try {
      decoded = decodeAnyManifest(opened.plaintext);
    } catch (err) {
      // Damaged on the way (a codec without integrity protection lets it through): the sender
      // tries another path at once instead of waiting for its stall timer.
      reply(ReportKind.rejected, RejectReason.corrupt);
      throw err;
    }
    if (decoded.manifest.v === 3 && decoded.manifest.sha256 !== undefined) {
      // The hash of a v3 manifest travels in its hash unit only (a stored copy has it, a sent one never).
      reply(ReportKind.rejected, RejectReason.corrupt);
      throw new KithError('ERR_MANIFEST_MALFORMED', 'a version 3 manifest names a payload hash');
    }
    // Version 2 (a list's wrap-once copy) names no id or recipient: its body is shared by every
    // copy, signed once; the PKESK that opened it was wrapped for us, and the id is the unit's.
    const mine =
      decoded.manifest.v === 2 || (decoded.manifest.id === id && decoded.manifest.to === ctx.trust.self);
    if (!mine || decoded.manifest.from !== opened.sender) {
      ctx.count('rejected_not_for_me');
      return reply(ReportKind.rejected, RejectReason.notForMe);
    }
    if (decoded.manifest.v === 2) ctx.count('manifests_shared_body');
    const { inline } = decoded;
    // From here a version-2 manifest is what it amounts to: an inline payload for us.
    const d = decoded.manifest;
    const manifest: Manifest =
      d.v === 2
        ? {
            v: 1,
            id,
            from: d.from,
            to: ctx.trust.self,
            size: d.size,
            chunkSize: 0,
            chunks: 0,
            contentKey: '',
            sha256: d.sha256,
          }
        : d;
    if (manifest.size > (ctx.options.maxInboundBytes ?? MAX_INBOUND_DEFAULT)) {
      ctx.count('rejected_too_large');
      return reply(ReportKind.rejected, RejectReason.tooLarge);
    }
    // Spam control's first-contact limit (agent/spam): refused with its reason, final at the sender.
    const refusal = ctx.spam?.admit?.(id, opened.sender, opened.verified, packet.firstContact === true);
    if (refusal) {
      ctx.count(`rejected_${refusal.code}`);
      return reply(
        ReportKind.rejected,
        refusal.code === 'first_contact_unflagged'
          ? RejectReason.firstContactUnflagged
          : RejectReason.firstContactLimit,
      );
    }
    const base = { id, sender: opened.sender, verified: opened.verified, size: manifest.size };
    if (manifest.chunks === 0) {
      if (createHash('sha256').update(inline).digest('hex') !== manifest.sha256) {
        ctx.count('rejected_payload_corrupt');
        return reply(ReportKind.rejected, RejectReason.corrupt);
      }
      await this.handOff(id, { ...base, data: inline, sealed, receivedAt: new Date(ctx.now()) }, reply);
      return;
    }
    if (!ctx.options.spoolDir) {
      ctx.count('rejected_too_large');
      return reply(ReportKind.rejected, RejectReason.tooLarge);
    }
    const bitmap = new ChunkBitmap(unitCount(manifest));
    ctx.store.putInbound({
      id,
      manifest: opened.plaintext,
      sender: opened.sender,
      verified: opened.verified,
      received: bitmap.bits,
      from: packet.from,
      inId: packet.inId,
    });
    const created = {
      manifest,
      key: Buffer.from(manifest.contentKey, 'base64url'),
      bitmap,
      path: spoolPath(ctx.options.spoolDir, id),
    };
    this.assemblies.set(id, created);
    this.touch(id);
    this.announce(id, created, opened.verified);
    ctx.count('manifests_received');
    reply(ReportKind.chunkAck, 0);
  }

  /** The assembly of a message, reloaded from the store after a restart. */
  private assembly(id: MessageId): Assembly | undefined {
    const cached = this.assemblies.get(id);
    if (cached) return cached;
    const rec = this.ctx.store.getInbound(id);
    if (!rec || !this.ctx.options.spoolDir) return undefined;
    const { manifest } = decodeManifest(rec.manifest);
    const a = {
      manifest,
      key: Buffer.from(manifest.contentKey, 'base64url'),
      bitmap: new ChunkBitmap(unitCount(manifest), Buffer.from(rec.received)),
      path: spoolPath(this.ctx.options.spoolDir, id),
    };
    this.assemblies.set(id, a);
    this.announce(id, a, rec.verified);
    return a;
  }

  /** Tells the sink a transfer is arriving (DeliverySink.onTransfer), so it can be served early. */
  private announce(id: MessageId, a: Assembly, verified: boolean): void {
    const m = a.manifest;
    this.sink.onTransfer?.({
      id,
      sender: m.from,
      verified,
      size: m.size,
      chunkSize: m.chunkSize,
      chunks: m.chunks,
      spool: a.path,
      has: (i) => a.bitmap.has(i),
    });
  }

  private async onChunk(id: MessageId, index: number, sealed: Buffer, reply: Reply): Promise<void> {
    const { ctx } = this;
    const a = this.assembly(id);
    if (!a) return ctx.count(index === CANCEL_INDEX ? 'cancel_unknown' : 'rejected_chunk_unknown');
    const m = a.manifest;
    if (index === CANCEL_INDEX) return this.onCancel(id, a, sealed);
    const units = unitCount(m);
    if (index >= units) return ctx.count('rejected_chunk_oversize');
    // A v3 manifest's last unit is the hash unit: the payload's SHA-256, sealed like a chunk.
    const hashUnit = index === m.chunks;
    const expected = (hashUnit ? 32 : chunkLength(m.size, m.chunkSize, index)) + 16;
    if (sealed.length < expected) return ctx.count('rejected_chunk_truncated');
    if (sealed.length > expected) return ctx.count('rejected_chunk_oversize');
    const data = openChunk(a.key, Buffer.from(id, 'hex'), index, m.chunks, sealed);
    if (!a.bitmap.has(index) && hashUnit) {
      // Kept in the stored manifest (with the bitmap, in one write), so a restart still has it.
      m.sha256 = data.toString('hex');
      a.bitmap.set(index);
      const rec = ctx.store.getInbound(id);
      if (rec) ctx.store.putInbound({ ...rec, manifest: encodeManifest(m), received: a.bitmap.bits });
      ctx.count('hash_units_received');
    } else if (!a.bitmap.has(index)) {
      await writeChunk(a.path, index * m.chunkSize, data);
      a.bitmap.set(index);
      ctx.store.setReceived(id, a.bitmap.bits);
      ctx.count('chunks_received');
      this.touch(id);
      this.sink.onChunk?.(id, index);
    }
    const done = a.bitmap.contiguous();
    if (done < units) return reply(ReportKind.chunkAck, done);
    if (this.delivering.has(id)) return ctx.count('duplicate_message');
    this.delivering.add(id);
    try {
      await this.complete(id, a, reply);
    } finally {
      this.delivering.delete(id);
    }
  }

  /**
   * Every unit of `a` is stored: checks the whole payload's hash and hands the message off. The
   * caller holds the claim on `id`. A damaged assembly is discarded (the sender starts again).
   */
  private async complete(id: MessageId, a: Assembly, reply: Reply): Promise<void> {
    const { ctx } = this;
    const m = a.manifest;
    if ((await hashFile(a.path)) !== m.sha256) {
      ctx.count('rejected_payload_corrupt');
      await removeSpool(a.path);
      this.assemblies.delete(id);
      ctx.store.deleteInbound(id);
      return reply(ReportKind.rejected, RejectReason.corrupt);
    }
    const file = a.path;
    const rec = ctx.store.getInbound(id);
    const inbound = {
      id,
      sender: m.from,
      verified: rec?.verified ?? false,
      size: m.size,
      receivedAt: new Date(ctx.now()),
      file,
    };
    if (await this.handOff(id, inbound, reply)) {
      await removeSpool(file);
      this.assemblies.delete(id);
      ctx.store.deleteInbound(id);
      clearTimeout(this.idle.get(id)?.timer);
      this.idle.delete(id);
    }
  }

  /**
   * The sender's cancel unit: only one that authenticates under the transfer's content key ends
   * it. Anything else (a relay's or another agent's forgery, a damaged copy) is refused with its
   * reason and the transfer goes on.
   */
  private async onCancel(id: MessageId, a: Assembly, sealed: Buffer): Promise<void> {
    const { ctx } = this;
    let reason: string;
    try {
      reason = openCancel(a.key, Buffer.from(id, 'hex'), a.manifest.chunks, sealed);
    } catch {
      ctx.count('rejected_cancel_forged');
      ctx.logger.warn(
        { id },
        'a cancel for an arriving transfer was refused: it does not authenticate under the key of the ' +
          "transfer's signed manifest, so it is not from its sender; the transfer goes on",
      );
      return;
    }
    await this.end(id, 'cancelled', reason);
  }

  /**
   * Hands a message to the sink once. The caller holds the claim on `id`; the delivered record is
   * checked again here because a copy that got its claim after the first copy's hand-off ended
   * passed the check at the door before that record existed. True when the message is (now or
   * already) in the mailbox.
   */
  private async handOff(
    id: MessageId,
    message: Parameters<DeliverySink['receive']>[0],
    reply: Reply,
  ): Promise<boolean> {
    const { ctx } = this;
    if (ctx.store.isDelivered(id)) {
      ctx.count('duplicate_message');
      reply(ReportKind.delivered);
      return true;
    }
    // Where a complaint about it will go, recorded before the mailbox shows it: a client can move
    // it to Junk as soon as it appears (spam control keeps it durably, the map does not).
    const link = this.links.get(id) ?? ctx.store.getInbound(id);
    if (link) ctx.spam?.onReceived(id, link.from, link.inId, message.sender);
    // The delivered mark rides in the mailbox append's commit where the sink takes it: the
    // message and its mark are durable together, in one fsync (bench/RESULTS.md 10.8).
    const delivered = ctx.store.deliveredRider?.(id, ctx.now);
    try {
      await this.sink.receive(delivered ? { ...message, delivered } : message);
    } catch (err) {
      // Not durable: no "delivered"; the sender's stall timer re-sends and we try again.
      ctx.count('sink_failed');
      ctx.logger.warn({ err: (err as Error).message }, 'the sink refused a message');
      return false;
    }
    if (delivered?.taken) ctx.count('delivered_with_mailbox');
    else if (ctx.store.markDeliveredDurable) await ctx.store.markDeliveredDurable(id, ctx.now());
    else ctx.store.markDelivered(id, ctx.now());
    ctx.count('delivered');
    reply(ReportKind.delivered);
    return true;
  }
}

/** A duration as people say it (the expiry's reason text): whole days, hours, minutes or seconds. */
function describeMs(ms: number): string {
  for (const [unit, size] of [
    ['day', 86_400_000],
    ['hour', 3_600_000],
    ['minute', 60_000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}${ms === size ? '' : 's'}`;
  }
  return `${Math.round(ms / 1000)} s`;
}

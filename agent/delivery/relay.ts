import { createHash } from 'node:crypto';
import type { AgentId } from '../../common/ids.ts';
import { isKithError, KithError } from '../../common/errors.ts';
import { agentIdFromPublic, publicFromAgentId, signWith } from '../onion/keys.ts';
import { peelOnion, type HopSecret } from '../onion/layers.ts';
import { ComplaintCounter } from '../reports/complaints.ts';
import { RefuseReason, ReportKind, sealReport } from '../reports/report.ts';
import type { EngineContext, TransitEvent } from './context.ts';
import type { HeldPacket, HopRecord } from './store.ts';
import { hopProof, verifyHopProof } from './proof.ts';
import {
  decodeComplaint,
  decodeOnion,
  decodeReport,
  encodeComplaint,
  encodeOnion,
  encodeReport,
  hopDigest,
  linkId,
} from './frames.ts';

/** The part of the engine that owns outbound packets and their reports (the Sender). */
export interface Origin {
  /** True if `link` is a packet this agent originated. */
  owns(link: string): boolean;
  /** A report for one of our packets. */
  onReport(link: string, sealed: Buffer): void;
  /** A complaint about one of our messages. */
  onComplaint(link: string): void;
}

/** The part that takes packets addressed to this agent (the Receiver). */
export interface Destination {
  onUnit(packet: {
    from: AgentId;
    inId: string;
    secret: HopSecret;
    body: Buffer;
    firstContact?: boolean;
  }): Promise<void>;
}

const SEEN_LIMIT = 100_000;

/** Packets whose hop record may wait for a commit at once before the frame loop waits too. */
const MAX_UNCOMMITTED = 256;

/** A peeled, re-signed packet ready to go on to its next hop. */
interface Forward {
  next: AgentId;
  out: Buffer;
  outId: string;
  expiresAt: number;
  report?: { to: AgentId; link: string; secret: HopSecret };
}

/** How far ahead of this agent's clock a sender's clock may be (packet expiry checks). */
export const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * What every hop does (docs/protocol.md, "Forwarding"): verify the neighbour's signature, refuse
 * replays, peel, remember the predecessor, sign and hand on (or hold while the next hop is
 * unreachable), report; and route reports and complaints back along the remembered links.
 * Logs name only neighbours and link ids.
 */
export class Relay {
  /** Bytes held in the store for others (kept here so hold() needs no query). */
  private heldBytes: number;
  /** Neighbours whose held packets are being handed on now; true when asked again meanwhile. */
  private readonly flushing = new Map<AgentId, boolean>();
  private readonly seenReports = new Set<string>();
  private readonly seenComplaints = new Set<string>();
  private readonly transit = new Set<(event: TransitEvent) => void>();
  /** Link ids of packets whose hop record waits for its commit (the replay guard meanwhile). */
  private readonly uncommitted = new Set<string>();
  /** Packets waiting for their commit, and frame loops waiting for one of them to finish. */
  private waiting = 0;
  private readonly slots: (() => void)[] = [];
  readonly complaints: ComplaintCounter;

  constructor(
    private readonly ctx: EngineContext,
    private readonly origin: Origin,
    private readonly destination: Destination,
    onComplaintThreshold: (neighbour: AgentId, count: number) => void,
  ) {
    this.complaints = new ComplaintCounter(ctx.options.complaintThreshold, onComplaintThreshold);
    this.heldBytes = ctx.store.heldBytes();
  }

  /** Sends a sealed progress report for a packet back to the neighbour that handed it to us. */
  report(to: AgentId, link: string, secret: HopSecret, kind: ReportKind, value = 0): void {
    const sealed = sealReport(this.ctx.keys, secret, { kind, at: this.ctx.now(), value });
    this.ctx.transport.send(to, encodeReport(link, sealed)).then(
      () => this.ctx.count('reports_sent'),
      () => this.ctx.count('report_send_failed'),
    );
  }

  async onOnion(from: AgentId, frame: Buffer): Promise<void> {
    const { ctx } = this;
    try {
      const { header, body, signature } = decodeOnion(frame);
      if (ctx.trust.isRevoked(from)) return ctx.count('rejected_revoked');
      const digest = hopDigest(ctx.keys.signPublic, header, body);
      if (!ctx.verifier.verifyByAgent(from, digest, signature)) return ctx.count('rejected_hop_signature');
      // Spam control suspended this neighbour until it shows it cut a spam source off (agent/spam).
      if (ctx.spam?.refuses(from)) return ctx.count('rejected_suspended');
      // Kept with the hop memory: later (a complaint) we can still show that `from` handed it to us.
      const proof = hopProof(digest, signature);
      const inId = linkId(header);
      if (this.uncommitted.has(inId) || ctx.store.hasHopIn(inId)) return ctx.count('rejected_replay');
      const peeled = peelOnion(ctx.keys.onionPrivate, ctx.keys.onionPublic, header, body);
      const ins = peeled.instruction;
      const now = ctx.now();
      if (ins.expiresAt < now) return ctx.count('rejected_expired');
      // Why refuse rather than hold until a cap: hop memory is also the replay guard, so it must
      // last as long as the packet is valid; a packet valid for centuries would need it for centuries.
      if (ins.expiresAt > now + ctx.options.maxHoldMs + CLOCK_SKEW_MS)
        return ctx.count('rejected_expiry_too_far');
      const expiresAt = Math.max(now + ctx.options.hopMemoryMs, ins.expiresAt);
      // Spam control's forwarding allowance (agent/spam): past it this hour the packet is refused
      // and the sender's stall timer sends it again, by another path or later.
      // First-contact credit (agent/spam, docs/protocol.md 15.7): a first contact from a neighbour
      // whose credit is all in unjudged first contacts waits (at the sender) for their verdicts.
      // Before the allowance, so that a held packet does not use it up.
      const first = ins.firstContact === true && ctx.spam?.firstContactHeld !== undefined;
      if (first && ctx.spam!.firstContactHeld!(from)) {
        this.report(from, inId, peeled.secret, ReportKind.refused, RefuseReason.firstContactHeld);
        throw new KithError('ERR_FIRST_CONTACT_HELD', "first contact over its neighbour's credit");
      }
      if (ctx.spam?.overAllowance?.(from, frame.length)) {
        // Told to the sender in a report only it can read, so its status email says why.
        this.report(from, inId, peeled.secret, ReportKind.refused, RefuseReason.overAllowance);
        throw new KithError('ERR_OVER_ALLOWANCE', "packet over its neighbour's allowance this hour");
      }
      if (ins.kind === 'deliver') {
        this.recordDelivered({ inId, from, proof, outId: null, to: null, expiresAt });
        ctx.spam?.onPacket(from);
        if (first) ctx.spam?.onFirstContact?.(from, inId);
        await this.destination.onUnit({
          from,
          inId,
          secret: peeled.secret,
          body: peeled.body,
          firstContact: ins.firstContact === true,
        });
        return;
      }
      const next = agentIdFromPublic(ins.next);
      if (next === from || next === ctx.keys.id) return ctx.count('rejected_loop');
      if (ctx.trust.isRevoked(next)) return ctx.count('rejected_revoked');
      const sig = signWith(ctx.keys, hopDigest(ins.next, peeled.header, peeled.body));
      const out = encodeOnion(peeled.header, peeled.body, sig);
      const outId = linkId(peeled.header);
      // Counted against the credit at once (not after the commit): a burst must not all pass the check.
      if (first) ctx.spam?.onFirstContact?.(from, outId);
      const record: HopRecord = { inId, from, proof, outId, to: next, expiresAt };
      const report = ins.report ? { to: from, link: inId, secret: peeled.secret } : undefined;
      const forward: Forward = { next, out, outId, expiresAt: ins.expiresAt, report };
      if (!ctx.store.putHopDurable) {
        ctx.store.putHop(record);
        ctx.spam?.onPacket(from);
        return await this.handOn(from, forward);
      }
      await this.commitThenHandOn(from, record, forward);
    } catch (err) {
      if (!isKithError(err)) throw err;
      ctx.count(rejectName(err.code));
      ctx.logger.debug({ from, code: err.code }, 'packet rejected');
    }
  }

  /**
   * The recipient's hop record (who handed it the packet, with the proof: where a complaint goes).
   * Queued in the connection's group commit and not waited for: every later write of this message
   * (the mailbox's append, the delivered mark) is queued after it, so it is committed with them or
   * before, i.e. before the message shows and before "delivered" goes back, as when it was written
   * through, but without a commit (one WAL fsync) of its own per message: it starts no commit
   * itself (putHopSoon) but rides with the mailbox append's, which follows the decrypt.
   */
  private recordDelivered(record: HopRecord): void {
    const { ctx } = this;
    const put = ctx.store.putHopSoon ?? ctx.store.putHopDurable;
    if (!put) return ctx.store.putHop(record);
    const stored = put.call(ctx.store, record).catch((err: Error) => {
      ctx.count('rejected_hop_not_stored');
      ctx.logger.warn({ err: err.message }, 'hop record of a received packet not stored');
    });
    ctx.transport.track?.(stored);
  }

  /**
   * The packet goes on (and its "forwarded" or "held" report back) only once its hop record is
   * durable, but the frame loop does not wait for that commit: it reads the next packet, so every
   * packet that arrives while one commit's fsync runs shares the next commit (group commit). Why
   * this order: the hop record routes the reports and complaints of the packet back and refuses
   * its replay; a relay that handed a packet on and then crashed before the record was durable
   * would pass a replay of it and could not route its reports. A crash before the commit loses
   * the packet here, as one still in the link's buffers is: the sender re-sends a fresh packet
   * when its stall timer fires. At most MAX_UNCOMMITTED packets wait; past that the frame loop
   * waits too (backpressure on the link).
   */
  private async commitThenHandOn(from: AgentId, record: HopRecord, forward: Forward): Promise<void> {
    const { ctx } = this;
    this.uncommitted.add(record.inId);
    while (this.waiting >= MAX_UNCOMMITTED) await new Promise<void>((r) => this.slots.push(r));
    this.waiting++;
    const work = ctx.store.putHopDurable!(record)
      .then(
        () => {
          this.uncommitted.delete(record.inId);
          ctx.spam?.onPacket(from);
          return this.handOn(from, forward);
        },
        (err: Error) => {
          // Not stored (a full disk, a closed database): not handed on either; the sender re-sends.
          this.uncommitted.delete(record.inId);
          ctx.count('rejected_hop_not_stored');
          ctx.logger.warn({ from, err: err.message }, 'hop record not stored; packet dropped');
        },
      )
      .catch((err: Error) => {
        ctx.count('internal_error');
        ctx.logger.error({ from, err: err.message }, 'handing on a packet failed');
      })
      .finally(() => {
        this.waiting--;
        this.slots.shift()?.();
      });
    ctx.transport.track?.(work);
  }

  /** Hands a packet on whose hop record is stored; holds it when the next hop is unreachable. */
  private async handOn(from: AgentId, f: Forward): Promise<void> {
    const { ctx } = this;
    try {
      await ctx.transport.send(f.next, f.out);
      ctx.count('forwarded');
      ctx.logger.debug({ from, to: f.next, link: f.outId }, 'packet handed on');
      if (f.report) this.report(f.report.to, f.report.link, f.report.secret, ReportKind.forwarded);
    } catch {
      this.hold(f.next, { frame: f.out, expiresAt: f.expiresAt, report: f.report });
    }
  }

  /**
   * Store and forward: the packet waits in the store (durable, so a restart of this relay loses
   * nothing) until the next hop's link comes up or the packet expires (at most maxHoldMs from
   * now, see onOnion), within maxHeldBytes for all neighbours together.
   */
  private hold(next: AgentId, item: Omit<HeldPacket, 'seq' | 'next'>): void {
    const { ctx } = this;
    if (this.heldBytes + item.frame.length > ctx.options.maxHeldBytes) {
      ctx.count('rejected_hold_full');
      return;
    }
    const seq = ctx.store.putHeld({ ...item, next });
    this.heldBytes += item.frame.length;
    this.tell({ kind: 'held', packet: { seq, next, expiresAt: item.expiresAt } });
    ctx.count('held');
    ctx.logger.debug({ to: next }, 'next hop unreachable, packet held');
    if (item.report) this.report(item.report.to, item.report.link, item.report.secret, ReportKind.held);
  }

  /** Hears when packets are held and released (the transit queue); returns an unsubscribe. */
  onTransit(listener: (event: TransitEvent) => void): () => void {
    this.transit.add(listener);
    return () => this.transit.delete(listener);
  }

  private tell(event: TransitEvent): void {
    for (const listener of this.transit) {
      try {
        listener(event);
      } catch (err) {
        this.ctx.logger.warn({ err: (err as Error).message }, 'transit listener failed');
      }
    }
  }

  /** Bytes currently held for unreachable next hops. */
  heldSize(): number {
    return this.heldBytes;
  }

  /** Drops held packets past their deadline. */
  pruneHeld(now: number): void {
    const pruned = this.ctx.store.pruneHeld(now);
    if (pruned > 0) {
      this.ctx.count('held_expired', pruned);
      this.heldBytes = this.ctx.store.heldBytes();
    }
  }

  /** A link came up: hand on what we held for it, oldest first, a batch at a time. */
  async linkUp(peer: AgentId): Promise<void> {
    // A link that flaps while we flush: finish this pass, then one more for the new link.
    if (this.flushing.has(peer)) {
      this.flushing.set(peer, true);
      return;
    }
    try {
      do {
        this.flushing.set(peer, false);
        await this.flush(peer);
      } while (this.flushing.get(peer));
    } finally {
      this.flushing.delete(peer);
    }
  }

  private async flush(peer: AgentId): Promise<void> {
    let after = 0;
    for (;;) {
      const batch = this.ctx.store.heldFor(peer, after, 32);
      if (batch.length === 0) return;
      for (const item of batch) {
        after = item.seq;
        const expired = item.expiresAt < this.ctx.now();
        if (expired) {
          this.ctx.count('held_expired');
        } else {
          try {
            await this.ctx.transport.send(peer, item.frame);
          } catch {
            return; // the link went down again: the rest stays held for the next time
          }
          this.ctx.count('forwarded');
          if (item.report)
            this.report(item.report.to, item.report.link, item.report.secret, ReportKind.forwarded);
        }
        this.ctx.store.deleteHeld(item.seq);
        this.heldBytes -= item.frame.length;
        this.tell({ kind: 'released', seq: item.seq, why: expired ? 'expired' : 'handed on' });
      }
    }
  }

  async onReport(from: AgentId, frame: Buffer): Promise<void> {
    const { ctx } = this;
    let parsed;
    try {
      parsed = decodeReport(frame);
    } catch {
      return ctx.count('rejected_report_malformed');
    }
    // a flat 32-char string: slice() of the 64-char hex would keep its parent alive in the set
    const key = createHash('sha256').update(parsed.sealed).digest().toString('hex', 0, 16);
    if (this.seenReports.has(key)) return ctx.count('rejected_report_replay');
    remember(this.seenReports, key);
    if (this.origin.owns(parsed.link)) return this.origin.onReport(parsed.link, Buffer.from(parsed.sealed));
    const hop = ctx.store.hopByOut(parsed.link);
    if (!hop || hop.to !== from) return ctx.count('rejected_report_unknown');
    await ctx.transport.send(hop.from, encodeReport(hop.inId, Buffer.from(parsed.sealed))).then(
      () => ctx.count('reports_relayed'),
      () => ctx.count('report_send_failed'),
    );
  }

  async onComplaint(from: AgentId, frame: Buffer): Promise<void> {
    const { ctx } = this;
    let link: string;
    try {
      link = decodeComplaint(frame).link;
    } catch {
      return ctx.count('rejected_complaint_malformed');
    }
    if (this.seenComplaints.has(link)) return ctx.count('rejected_complaint_replay');
    remember(this.seenComplaints, link);
    if (this.origin.owns(link)) return this.origin.onComplaint(link);
    const hop = ctx.store.hopByOut(link);
    if (!hop || hop.to !== from) return ctx.count('rejected_complaint_unknown');
    // Counted against the neighbour only with its signed word that it handed us the packet (a
    // record from before proofs were kept has none); the complaint travels on either way.
    if (hasProof(hop)) this.complaints.add(hop.from);
    else ctx.count('complaint_unproven');
    ctx.count('complaints_relayed');
    await ctx.transport
      .send(hop.from, encodeComplaint(hop.inId))
      .catch(() => ctx.count('complaint_send_failed'));
  }
}

/** True if the hop record proves its neighbour handed us the packet (checked again, not trusted). */
function hasProof(hop: HopRecord): boolean {
  try {
    return verifyHopProof(hop, publicFromAgentId(hop.from));
  } catch {
    return false; // not an Ed25519 agent id: nothing can prove it
  }
}

function remember(set: Set<string>, key: string): void {
  if (set.size >= SEEN_LIMIT) set.delete(set.values().next().value as string);
  set.add(key);
}

/** ERR_ONION_UNDECRYPTABLE → rejected_onion_undecryptable: one counter per error code. */
export function rejectName(code: string): string {
  return `rejected_${code.replace(/^ERR_/, '').toLowerCase()}`;
}

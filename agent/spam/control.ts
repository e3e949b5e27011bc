import { createHash } from 'node:crypto';
import type { Logger } from '../../common/logger.ts';
import type { AgentId, Fingerprint, MessageId } from '../../common/ids.ts';
import type { Transport } from '../transport.ts';
import { publicFromAgentId, SignatureVerifier, type AgentKeys } from '../onion/keys.ts';
import { FrameType, type Count } from '../onion/wire.ts';
import type { HopRecord } from '../delivery/store.ts';
import { verifyHopProof } from '../delivery/proof.ts';
import {
  addDecayed,
  clearsAtOnce,
  complaintWeight,
  decayedValue,
  evidenceWeight,
  judgeNeighbour,
  complaintCounts,
  recipientCounts,
  relayCutEpoch,
  type Decayed,
  type NeighbourFacts,
  type NeighbourVerdict,
  type Refusal,
  type SpamPolicy,
} from './decisions.ts';
import type { SpamLimits } from './limits.ts';
import type { FirstContactCredit } from './credit.ts';
import type { ComplaintRow, NeighbourRow, SpamStore } from './store.ts';
import { decodeNotice, encodeNotice, evidenceOf, verifiedItems } from './notice.ts';
import { agentIdFromPublic } from '../onion/keys.ts';
import { isKithError } from '../../common/errors.ts';
import {
  complaintIdFor,
  decodeComplaintFrame,
  decodeCutFrame,
  encodeComplaintFrame,
  encodeCutFrame,
  makeStatement,
  StatementKind,
  verifyComplaintHop,
  verifyCut,
  verifyStatement,
  type ComplaintFrame,
  type Statement,
} from './wire.ts';

/** What the delivery engine lends spam control (bound once, when the engine is built). */
export interface SpamCore {
  /** The hop memory record of a packet handed on, by its outgoing link id. */
  hopByOut(link: string): HopRecord | undefined;
  /** If `link` is a packet this agent sent: tells the sender side and returns true. */
  ownComplaint(link: string): boolean;
  /** The engine's counters (rejections are counted where every other one is). */
  count: Count;
}

/** The hooks the engine calls (agent/delivery/engine.ts `spam`). */
export interface SpamHooks {
  bind(core: SpamCore): void;
  /** Frames of types 6, 7 and 8. */
  onFrame(from: AgentId, frame: Buffer): Promise<void>;
  /** A packet from `from` was verified and handed on or taken (traffic for the threshold). */
  onPacket(from: AgentId): void;
  /** True while packets from this neighbour are refused (suspended, awaiting its verdict). */
  refuses(from: AgentId): boolean;
  /** A message went into the mailbox; its manifest came from `from` on link `inId`. */
  onReceived(id: MessageId, from: AgentId, inId: string, sender: Fingerprint): void;
  /** The recipient's door (first contacts per sender per day): a refusal, or undefined to take it. */
  admit?(id: MessageId, sender: Fingerprint, verified: boolean, flagged?: boolean): Refusal | undefined;
  /** Every hop's door (packets per neighbour per hour): true when this packet is over it. */
  overAllowance?(from: AgentId, bytes: number): boolean;
  /** The sender: flag a message to `to` as a first contact (15.7)? */
  flagsFirstContact?(to: Fingerprint): boolean;
  /** Every hop: is a flagged first contact from this neighbour held (its credit in use)? */
  firstContactHeld?(from: AgentId): boolean;
  /** Every hop: a flagged first contact from `from` was handed on (or taken) as packet `link`. */
  onFirstContact?(from: AgentId, link: string): void;
}

/** What the node does when spam control revokes a neighbour. */
export interface RevocationAct {
  agent: AgentId;
  entity: Fingerprint | undefined;
  verdict: Extract<NeighbourVerdict, { action: 'revoke' }>;
  /** The open complaints against it, with their signed frames and hop proofs. */
  evidence: ComplaintRow[];
  /** The signed revocation notice with that evidence (frame type 8), to send before and after. */
  notice: Buffer;
}

export interface SpamControlDeps {
  transport: Transport;
  keys: AgentKeys;
  store: SpamStore;
  policy: SpamPolicy;
  logger: Logger;
  /** The entity that certified an agent. */
  entityOf(agent: AgentId): Fingerprint | undefined;
  /** True if this agent's trust is revoked here (by anyone, for any reason). */
  isRevoked(agent: AgentId): boolean;
  /** Revokes a neighbour's trust (the node: notice with evidence, then trust store revoke). */
  revoke(act: RevocationAct): void;
  /** How long the recipient remembers where a message came from (as long as hops remember it). */
  hopMemoryMs: number;
  /** The rate limits (first contacts, forwarding allowance); none in the simulator. */
  limits?: SpamLimits;
  /** The first-contact credit (15.7), when `spam.firstContactCredit` is on. */
  credit?: FirstContactCredit;
  /** True if this entity is a contact or trusted neighbour here (the sender's first-contact flag). */
  isKnown?(entity: Fingerprint): boolean;
  now?: () => number;
}

const FLUSH_EVERY_MS = 30_000;
/** Complaints older than this many half-lives weigh under 1/1000 and are not summed. */
const HORIZON_HALF_LIVES = 10;
/** How far ahead of our clock a recipient's statement may be. */
const SKEW_MS = 5 * 60_000;

/**
 * Spam control at one agent (docs/protocol.md 15): sends its user's complaints and withdrawals,
 * checks, counts and passes on those of others, judges its neighbours with the pure decisions,
 * and tells the node when to revoke. Durable state in SpamStore; traffic counts are flushed every
 * 30 s (a crash loses at most that much traffic, which only lowers thresholds a little).
 */
export class SpamControl implements SpamHooks {
  private core?: SpamCore;
  private readonly verifier = new SignatureVerifier();
  private readonly traffic = new Map<AgentId, { decayed: Decayed; total: number }>();
  private readonly dirty = new Set<AgentId>();
  private readonly suspendedNow = new Set<AgentId>();
  private readonly timers = new Map<AgentId, NodeJS.Timeout>();
  private flushTimer?: NodeJS.Timeout;
  private readonly now: () => number;
  private readonly listeners = new Set<(event: SpamEvent) => void>();

  constructor(private readonly deps: SpamControlDeps) {
    this.now = deps.now ?? Date.now;
    for (const n of deps.store.neighbours()) {
      this.traffic.set(n.agent, { decayed: n.traffic, total: n.totalTraffic });
      if (n.suspendedAt !== null && n.revokedAt === null) this.suspendedNow.add(n.agent);
    }
  }

  bind(core: SpamCore): void {
    this.core = core;
  }

  /** Starts the flush timer and settles verdicts that came due while the node was down. */
  start(): void {
    this.flushTimer = setInterval(() => {
      // A full disk (SQLITE_FULL) must not end the node (an uncaught throw in a timer did, in
      // test/faults/disk-full): the counts stay dirty and are written at a later flush.
      try {
        this.flush();
      } catch {
        this.count('spam_flush_failed');
      }
    }, FLUSH_EVERY_MS);
    this.flushTimer.unref();
    for (const n of this.deps.store.suspended()) this.evaluate(n.agent);
    this.deps.store.pruneReceived(this.now());
    this.deps.credit?.prune(this.deps.hopMemoryMs);
    this.deps.limits?.prune();
  }

  stop(): void {
    clearInterval(this.flushTimer);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.flush();
  }

  /** Hears what spam control does (suspensions, revocations, refusals), for tests and the node. */
  onEvent(listener: (event: SpamEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: SpamEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.deps.logger.error({ err }, 'spam event listener failed');
      }
    }
  }

  private count(name: string): void {
    this.core?.count(name);
  }

  // ---- the recipient ---------------------------------------------------------------------

  onReceived(id: MessageId, from: AgentId, inId: string, sender: Fingerprint): void {
    const now = this.now();
    this.deps.store.putReceived({
      messageId: id,
      neighbour: from,
      link: inId,
      sender,
      receivedAt: now,
      expiresAt: now + this.deps.hopMemoryMs,
    });
  }

  /**
   * The user moved a message to Junk: sign a complaint and send it to the neighbour that handed
   * the message over. 'unknown' when the message did not come over Kith or its path is forgotten,
   * 'already' when it stands already.
   */
  complain(id: MessageId): 'sent' | 'queued' | 'already' | 'unknown' {
    return this.state(id, StatementKind.complaint);
  }

  /** The user moved it out of Junk (not to Trash): withdraw the complaint along the same path. */
  withdraw(id: MessageId): 'sent' | 'queued' | 'already' | 'unknown' {
    return this.state(id, StatementKind.withdrawal);
  }

  /**
   * A list re-sent message `id` (a post it received) to its subscribers, and a subscriber's
   * complaint about one copy ended here (`originLink`: the copy's packet, its row kept by
   * onComplaint). The list complains about the post along the post's own inbound path, so it counts
   * against the poster's path (docs/protocol.md 15.8). Why not end it here, as for any sender: the
   * list did not write the post, it relayed it; like any honest relay it then gets its chance to
   * clear the copy's complaint downstream: when the poster's path cuts the poster off, the cut comes
   * back here and goes on to every copy's complaint it carries (sendCut). Withdrawals follow too.
   */
  carry(id: MessageId, originLink: string): 'sent' | 'queued' | 'already' | 'unknown' {
    const { store, keys } = this.deps;
    const origin = store.complaintOnLink(originLink);
    const got = store.received(id);
    if (!origin || origin.predecessor !== null || !got) return 'unknown';
    const own = store.complaintAbout(id)?.complaintId ?? complaintIdFor(keys, id);
    store.putCarried(own, origin.recipient, origin.complaintId);
    this.count('complaints_carried');
    const result = origin.state === 'active' ? this.complain(id) : 'already';
    const mine = store.complaint(keys.signPublic.toString('hex'), own);
    // The poster is cut off already: this copy's complaint clears downstream at once.
    if (mine?.clearedAt !== null && mine?.clearedAt !== undefined)
      this.sendCut(origin, mine.cutId ?? this.relayCutId(got.neighbour, this.now()), mine.clearedAt);
    else if (this.isCutOff(got.neighbour))
      this.sendCut(
        origin,
        lastCutId(store, got.neighbour) ?? this.relayCutId(got.neighbour, this.now()),
        store.neighbour(got.neighbour)?.revokedAt ?? this.now(),
      );
    return result;
  }

  /** A recipient withdrew (or renewed) a complaint a list carries: its own follows the recipients'. */
  private carriedChanged(origin: ComplaintRow): void {
    const { store, keys } = this.deps;
    const own = store.carrierOf(origin.recipient, origin.complaintId);
    if (!own) return;
    const mine = store.complaint(keys.signPublic.toString('hex'), own);
    if (!mine?.messageId) return;
    // One subscriber's complaint still standing keeps the list's.
    if (store.carriedFor(own).some((r) => r.state === 'active')) this.complain(mine.messageId);
    else this.withdraw(mine.messageId);
  }

  private state(id: MessageId, kind: StatementKind): 'sent' | 'queued' | 'already' | 'unknown' {
    const { store, keys } = this.deps;
    const got = store.received(id);
    if (!got) return 'unknown';
    const existing = store.complaintAbout(id);
    const want = kind === StatementKind.complaint ? 'active' : 'withdrawn';
    if (!existing && kind === StatementKind.withdrawal) return 'unknown';
    if (existing?.state === want) return 'already';
    const complaintId = existing?.complaintId ?? complaintIdFor(keys, id);
    // Strictly newer than what the hops saw last: they refuse anything else as a replay.
    const at = Math.max(this.now(), (existing?.lastAt ?? 0) + 1);
    const statement = makeStatement(keys, kind, complaintId, at);
    const first = this.deps.credit?.isFirstContact(got.link) === true;
    // A complaint is the bad verdict on a first contact: its credit is released along the path.
    if (first && kind === StatementKind.complaint) this.deps.credit!.verdict(got.link, false);
    const counted = recipientCounts(this.deps.entityOf(got.neighbour), got.sender, first);
    const row: ComplaintRow = {
      recipient: keys.signPublic.toString('hex'),
      complaintId,
      messageId: id,
      linkOut: null,
      successor: null,
      linkIn: got.link,
      predecessor: got.neighbour,
      state: want,
      lastAt: at,
      counted: existing ? existing.counted : counted,
      countedAt: existing?.countedAt ?? at,
      clearedAt: existing?.clearedAt ?? null,
      cutId: existing?.cutId ?? null,
      frame: null,
      proof: null,
    };
    store.putComplaint(row);
    this.count(kind === StatementKind.complaint ? 'complaints_sent' : 'withdrawals_sent');
    this.sendOn(row, statement);
    if (row.counted) this.evaluate(got.neighbour);
    return 'sent';
  }

  // ---- hops ------------------------------------------------------------------------------

  onPacket(from: AgentId): void {
    const t = this.traffic.get(from);
    const decayed = addDecayed(t?.decayed, 1, this.now(), this.deps.policy.halfLifeMs);
    this.traffic.set(from, { decayed, total: (t?.total ?? 0) + 1 });
    this.dirty.add(from);
  }

  refuses(from: AgentId): boolean {
    return this.suspendedNow.has(from);
  }

  admit(id: MessageId, sender: Fingerprint, verified: boolean, flagged?: boolean): Refusal | undefined {
    // Without the credit nobody flags, so an unflagged first contact is no evasion then.
    return this.deps.limits?.admit(id, sender, verified, this.deps.credit ? flagged === true : undefined);
  }

  flagsFirstContact(to: Fingerprint): boolean {
    return this.deps.credit !== undefined && this.deps.isKnown?.(to) !== true;
  }

  firstContactHeld(from: AgentId): boolean {
    const held = this.deps.credit?.held(from) === true;
    if (held) this.deps.logger.info({ from }, 'first contact held: the neighbour has its credit in use');
    return held;
  }

  onFirstContact(from: AgentId, link: string): void {
    this.deps.credit?.record(from, link);
  }

  /**
   * The user read a first contact and kept it (\Seen in a normal mailbox, no complaint): the
   * *seen* verdict (15.7) releases its credit here and at every hop back along its path, and
   * earns the neighbours good verdicts. 'unknown' when it was no flagged first contact (or its path
   * is forgotten), 'already' when judged before.
   */
  seen(id: MessageId): 'sent' | 'already' | 'unknown' {
    const { store, keys, credit } = this.deps;
    const got = store.received(id);
    if (!got || !credit?.isFirstContact(got.link)) return 'unknown';
    if (!credit.verdict(got.link, true)) return 'already';
    const statement = makeStatement(keys, StatementKind.seen, complaintIdFor(keys, id), this.now());
    this.count('verdicts_sent');
    this.sendOn({ predecessor: got.neighbour, linkIn: got.link }, statement);
    return 'sent';
  }

  overAllowance(from: AgentId, bytes: number): boolean {
    return this.deps.limits?.forward(from, bytes) !== undefined;
  }

  /** The decayed packets a neighbour handed on so far (what its forwarding allowance grows with). */
  trafficOf(agent: AgentId): number {
    const t = this.traffic.get(agent)?.decayed ?? this.deps.store.neighbour(agent)?.traffic;
    return t ? decayedValue(t, this.now(), this.deps.policy.halfLifeMs) : 0;
  }

  async onFrame(from: AgentId, frame: Buffer): Promise<void> {
    if (frame[1] === FrameType.signedComplaint) return this.onComplaint(from, frame);
    if (frame[1] === FrameType.cut) return this.onCut(from, frame);
    if (frame[1] === FrameType.spamRevocation) return this.onNotice(from, frame);
    this.count('rejected_frame_type');
  }

  private refuse(from: AgentId, code: string, detail?: Record<string, unknown>): void {
    this.count(`rejected_${code}`);
    this.deps.logger.info({ from, code, ...detail }, 'complaint refused');
    this.emit({ kind: 'refused', from, code });
  }

  private async onComplaint(from: AgentId, frame: Buffer): Promise<void> {
    const { store, keys } = this.deps;
    let f: ComplaintFrame;
    try {
      f = decodeComplaintFrame(frame);
    } catch {
      return this.refuse(from, 'complaint_malformed');
    }
    const s = f.statement;
    if (!verifyStatement(this.verifier, s) || !verifyComplaintHop(this.verifier, from, keys.signPublic, f))
      return this.refuse(from, 'complaint_forged');
    const now = this.now();
    if (s.at > now + SKEW_MS) return this.refuse(from, 'complaint_future');
    if (s.kind === StatementKind.seen) return this.onSeen(from, f, s);
    const recipient = s.recipient.toString('hex');
    const existing = store.complaint(recipient, s.complaintId);
    const want = s.kind === StatementKind.complaint ? 'active' : 'withdrawn';
    if (existing) {
      if (s.at <= existing.lastAt) return this.refuse(from, 'complaint_replay');
      if (existing.linkOut !== f.link || existing.successor !== from)
        return this.refuse(from, 'complaint_mismatch');
      const row = {
        ...existing,
        state: want as ComplaintRow['state'],
        lastAt: s.at,
        frame: Buffer.from(frame),
      };
      store.putComplaint(row);
      this.count(s.kind === StatementKind.complaint ? 'complaints_relayed' : 'withdrawals_relayed');
      this.sendOn(row, s);
      if (row.predecessor && row.counted) this.evaluate(row.predecessor);
      if (!row.predecessor) this.carriedChanged(row);
      return;
    }
    if (s.kind === StatementKind.withdrawal) return this.refuse(from, 'complaint_unknown');
    if (this.core?.ownComplaint(f.link)) {
      // We sent the message: nobody upstream to tell. Kept so that a replay is recognised.
      store.putComplaint(originRow(recipient, s, f.link, from, frame));
      this.count('complaints_received');
      return;
    }
    const hop = this.core?.hopByOut(f.link);
    if (!hop || hop.to !== from) return this.refuse(from, 'complaint_unknown');
    if (store.complaintOnLink(f.link)) return this.refuse(from, 'complaint_duplicate');
    const proven = hasProof(hop);
    const credit = this.deps.credit;
    const first = credit?.isFirstContact(f.link) === true;
    if (first) credit!.verdict(f.link, false);
    // With the credit hops know first contacts: a contact's complaints count once per recipient.
    const counts =
      !credit ||
      complaintCounts(
        first,
        store
          .openAgainst(hop.from, now - HORIZON_HALF_LIVES * this.deps.policy.halfLifeMs)
          .filter((r) => r.recipient === recipient && !credit.isFirstContact(r.linkOut ?? r.linkIn)).length,
      );
    if (!counts) this.count('complaint_contact_again');
    if (!proven) {
      this.count('complaint_unproven');
      this.deps.logger.info({ from, neighbour: hop.from }, 'complaint not counted: no verifying hop proof');
    }
    const cutOff = clearsAtOnce(this.isCutOff(hop.from));
    const row: ComplaintRow = {
      recipient,
      complaintId: s.complaintId,
      messageId: null,
      linkOut: f.link,
      successor: from,
      linkIn: hop.inId,
      predecessor: hop.from,
      state: 'active',
      lastAt: s.at,
      counted: proven && counts,
      countedAt: now,
      clearedAt: null,
      cutId: null,
      // Hop memory lasts hopMemoryMs from when the packet came (longer only for a packet valid longer).
      packetAt: Math.min(now, hop.expiresAt - this.deps.hopMemoryMs),
      frame: Buffer.from(frame),
      proof: hop.proof && {
        digest: Buffer.from(hop.proof.digest),
        signature: Buffer.from(hop.proof.signature),
      },
    };
    store.putComplaint(row);
    if (row.counted) this.count('complaints_counted');
    this.count('complaints_relayed');
    this.emit({ kind: 'counted', against: hop.from, proven });
    this.sendOn(row, s);
    if (cutOff) {
      // The source is cut off here already: clear it downstream at once (the clearing rule).
      this.sendCut(
        row,
        lastCutId(store, hop.from) ?? this.relayCutId(hop.from, now),
        store.neighbour(hop.from)?.revokedAt ?? now,
      );
    } else if (row.counted) this.evaluate(hop.from);
  }

  /**
   * A *seen* verdict (15.7) from `from` about a first contact we handed it: release its credit, add
   * a good verdict for the neighbour that handed it to us, and pass it on, re-signed, as complaints
   * travel. A verdict given already (a replay) or about a packet that was no first contact here is
   * refused.
   */
  private onSeen(from: AgentId, f: ComplaintFrame, s: Statement): void {
    if (this.core?.ownComplaint(f.link)) return this.count('verdicts_received');
    const hop = this.core?.hopByOut(f.link);
    if (!hop || hop.to !== from) return this.refuse(from, 'verdict_unknown');
    if (!this.deps.credit?.verdict(f.link, true)) return this.refuse(from, 'verdict_replay');
    this.count('verdicts_relayed');
    this.emit({ kind: 'verdict', from: hop.from, good: true });
    this.sendOn({ predecessor: hop.from, linkIn: hop.inId }, s);
  }

  /** Hands a statement on to the predecessor, re-signed for it, under the link id it knows. */
  private sendOn(row: Pick<ComplaintRow, 'predecessor' | 'linkIn'>, s: Statement): void {
    if (!row.predecessor || !row.linkIn) return;
    let receiver: Buffer;
    try {
      receiver = publicFromAgentId(row.predecessor);
    } catch {
      return;
    }
    const out = encodeComplaintFrame(this.deps.keys, receiver, row.linkIn, s);
    this.deps.transport.send(row.predecessor, out).catch(() => this.count('complaint_send_failed'));
  }

  private isCutOff(agent: AgentId): boolean {
    const n = this.deps.store.neighbour(agent);
    return (n !== undefined && n.revokedAt !== null) || this.deps.isRevoked(agent);
  }

  // ---- cut-offs --------------------------------------------------------------------------

  private async onCut(from: AgentId, frame: Buffer): Promise<void> {
    const { store, keys, policy } = this.deps;
    let c;
    try {
      c = decodeCutFrame(frame);
    } catch {
      return this.refuse(from, 'cut_malformed');
    }
    if (!verifyCut(this.verifier, from, keys.signPublic, c)) return this.refuse(from, 'cut_forged');
    const row = store.complaint(c.recipient.toString('hex'), c.complaintId);
    if (!row || row.predecessor !== from) return this.refuse(from, 'cut_unknown');
    if (row.clearedAt !== null) return this.count('cut_duplicate');
    const now = this.now();
    // A cut clears only complaints about packets handed on before it: once an honest relay cut
    // its source off, nothing it hands on later came from that source. So a made-up cut buys a
    // forger only what it sent before it, and clearing again later needs another act (cut id),
    // which maxCuts counts.
    if (row.packetAt !== null && row.packetAt !== undefined && row.packetAt > c.at + SKEW_MS)
      return this.refuse(from, 'cut_before_packet');
    store.putComplaint({ ...row, clearedAt: now, cutId: c.cutId });
    if (store.addCut(from, c.cutId, now)) {
      const n = this.neighbourRow(from);
      store.putNeighbour({ ...n, cuts: addDecayed(n.cuts, 1, now, policy.halfLifeMs) });
    }
    this.count('cuts_received');
    this.emit({ kind: 'cleared', against: from });
    // Handed on as our own act for this predecessor (relayCutEpoch says why), not as its act.
    this.sendCut(row, this.relayCutId(from, now), c.at);
    this.evaluate(from);
  }

  /** Tells the successor that the source of this complaint is cut off (no-op at the recipient). */
  private sendCut(row: ComplaintRow, cutId: string, at: number): void {
    if (!row.successor) {
      // Our own complaint as a list (carry): the cut goes on to the copies' complaints it carries.
      if (row.recipient === this.deps.keys.signPublic.toString('hex'))
        for (const origin of this.deps.store.carriedFor(row.complaintId)) this.sendCut(origin, cutId, at);
      return;
    }
    let receiver: Buffer;
    try {
      receiver = publicFromAgentId(row.successor);
    } catch {
      return;
    }
    const recipient = Buffer.from(row.recipient, 'hex');
    const out = encodeCutFrame(this.deps.keys, receiver, {
      recipient,
      complaintId: row.complaintId,
      cutId,
      at,
    });
    this.deps.transport.send(row.successor, out).catch(() => this.count('cut_send_failed'));
    this.count('cuts_sent');
  }

  // ---- judging ---------------------------------------------------------------------------

  /** The stored row of a neighbour with the traffic counted in memory since the last flush. */
  private neighbourRow(agent: AgentId): NeighbourRow {
    const stored = this.deps.store.neighbour(agent);
    const t = this.traffic.get(agent);
    return {
      agent,
      cuts: { value: 0, at: 0 },
      suspendedAt: null,
      revokedAt: null,
      reason: null,
      detail: null,
      ...stored,
      traffic: t?.decayed ?? stored?.traffic ?? { value: 0, at: 0 },
      totalTraffic: t?.total ?? stored?.totalTraffic ?? 0,
    };
  }

  /** The facts about a neighbour now (for the decision, `kith contacts`, tests). */
  facts(agent: AgentId): NeighbourFacts {
    const { store, policy } = this.deps;
    const now = this.now();
    const n = this.neighbourRow(agent);
    const open = store
      .openAgainst(agent, now - HORIZON_HALF_LIVES * policy.halfLifeMs)
      .reduce((sum, r) => sum + complaintWeight(r.countedAt, now, policy.halfLifeMs), 0);
    const credit = this.deps.credit;
    const openFirstContact = credit
      ? store
          .openAgainst(agent, now - HORIZON_HALF_LIVES * policy.halfLifeMs)
          .filter((r) => credit.isFirstContact(r.linkOut ?? r.linkIn))
          .reduce((sum, r) => sum + complaintWeight(r.countedAt, now, policy.halfLifeMs), 0)
      : undefined;
    // Neighbours' revocations of it with their evidence (15.5): each revoker's weight, decayed from
    // when it revoked (never from a future time: its clock is its word).
    const evidence = store
      .evidenceAgainst(agent, this.deps.keys.id)
      .reduce(
        (sum, r) =>
          sum +
          evidenceWeight(r.verified, policy) * complaintWeight(Math.min(r.at, now), now, policy.halfLifeMs),
        0,
      );
    return {
      openComplaints: open,
      ...(evidence > 0 ? { evidence } : {}),
      ...(credit ? { firstContactGood: credit.good(agent), openFirstContact } : {}),
      traffic: decayedValue(n.traffic, now, policy.halfLifeMs),
      lifetimeOpen: store.openCount(agent),
      lifetimeTraffic: n.totalTraffic,
      cuts: decayedValue(n.cuts, now, policy.halfLifeMs),
      suspendedAt: n.suspendedAt ?? undefined,
      revoked: n.revokedAt !== null,
    };
  }

  /** Decides about a neighbour and acts on it. */
  evaluate(agent: AgentId): NeighbourVerdict {
    const { store, policy, logger } = this.deps;
    const now = this.now();
    const verdict = judgeNeighbour(this.facts(agent), now, policy);
    const n = this.neighbourRow(agent);
    switch (verdict.action) {
      case 'suspend':
        store.putNeighbour({ ...n, suspendedAt: now, reason: 'suspended', detail: verdict.reason });
        this.suspendedNow.add(agent);
        // Its packets are refused from now on, so the source is cut off here: tell the hops
        // downstream at once. Why not only at revocation: they suspended us a moment earlier (the
        // complaint reached them first) and their settle time would end before ours, revoking an
        // honest relay before our cut notice came (15.3).
        for (const row of store.openAgainst(agent, now - HORIZON_HALF_LIVES * policy.halfLifeMs))
          this.sendCut(row, this.relayCutId(agent, now), now);
        logger.warn({ neighbour: agent, why: verdict.reason }, 'neighbour suspended for spam');
        this.emit({ kind: 'suspended', agent, reason: verdict.reason });
        this.schedule(agent, now + policy.settleMs);
        break;
      case 'wait':
        this.schedule(agent, verdict.until);
        break;
      case 'lift':
        store.putNeighbour({ ...n, suspendedAt: null, reason: null, detail: null });
        this.suspendedNow.delete(agent);
        logger.info({ neighbour: agent, why: verdict.reason }, 'neighbour no longer suspended');
        this.emit({ kind: 'lifted', agent });
        break;
      case 'revoke':
        this.revoke(agent, n, verdict, now);
        break;
      case 'none':
        break;
    }
    return verdict;
  }

  /**
   * Our cut act for everything that came through `predecessor` in this half-life: suspending it,
   * revoking it and passing on its own cut notices are one act downstream (relayCutEpoch).
   */
  private relayCutId(predecessor: AgentId, now: number): string {
    return createHash('sha256')
      .update('kith-cut-act-v1')
      .update(this.deps.keys.id)
      .update(predecessor)
      .update(String(relayCutEpoch(now, this.deps.policy)))
      .digest()
      .subarray(0, 16)
      .toString('hex');
  }

  private schedule(agent: AgentId, at: number): void {
    if (this.timers.has(agent)) return;
    const t = setTimeout(
      () => {
        this.timers.delete(agent);
        this.evaluate(agent);
      },
      Math.max(0, at - this.now()) + 1,
    );
    t.unref();
    this.timers.set(agent, t);
  }

  private revoke(
    agent: AgentId,
    n: NeighbourRow,
    verdict: Extract<NeighbourVerdict, { action: 'revoke' }>,
    now: number,
  ): void {
    const { store, logger, policy } = this.deps;
    const evidence = store.openAgainst(agent, now - HORIZON_HALF_LIVES * policy.halfLifeMs);
    const cutId = this.relayCutId(agent, now);
    store.putNeighbour({
      ...n,
      revokedAt: now,
      reason: verdict.reason,
      detail: `${verdict.detail}; cut ${cutId}`,
    });
    // Still refused until the trust store has it revoked (the node sends the notice first).
    this.suspendedNow.add(agent);
    const entity = this.deps.entityOf(agent);
    logger.warn({ neighbour: agent, entity, why: verdict.detail }, 'revoking a neighbour for spam');
    const items = evidenceOf(evidence, keyOf);
    const notice = encodeNotice(this.deps.keys, {
      revoked: keyOf(agent) ?? Buffer.alloc(32),
      at: now,
      reason: verdict.reason,
      detail: verdict.detail,
      items,
    });
    store.addRevocation({
      agent,
      entity: entity ?? null,
      byAgent: this.deps.keys.id,
      at: now,
      reason: verdict.reason,
      detail: verdict.detail,
      evidence: notice,
      verified: items.length,
    });
    try {
      this.deps.revoke({ agent, entity, verdict, evidence, notice });
    } catch (err) {
      logger.error({ err: (err as Error).message, neighbour: agent }, 'revocation failed');
    }
    // The source is cut off: every complaint about its packets clears downstream.
    for (const row of evidence) this.sendCut(row, cutId, now);
    this.emit({ kind: 'revoked', agent, entity, reason: verdict.reason, detail: verdict.detail });
  }

  /**
   * A human trusted this neighbour again (`kith trust`): forget the verdict and clear its open
   * complaints, so the old ones do not revoke it again at once. Why clear rather than keep: the
   * owner looked at it and decided; new complaints start a new count.
   */
  reinstate(agent: AgentId): void {
    const { store } = this.deps;
    const n = store.neighbour(agent);
    this.suspendedNow.delete(agent);
    if (!n || (n.revokedAt === null && n.suspendedAt === null)) return;
    const now = this.now();
    store.putNeighbour({
      ...this.neighbourRow(agent),
      revokedAt: null,
      suspendedAt: null,
      reason: null,
      detail: null,
    });
    const cleared = store.clearOpenAgainst(agent, now, 'reinstated');
    this.deps.logger.info({ neighbour: agent, cleared }, 'neighbour trusted again: spam verdict forgotten');
    this.emit({ kind: 'reinstated', agent });
  }

  /** A neighbour's revocation notice: about us (tell the owner) or about an agent we know (keep it). */
  private onNotice(from: AgentId, frame: Buffer): void {
    const { store, keys, logger } = this.deps;
    let n;
    try {
      n = decodeNotice(this.verifier, from, frame);
    } catch (err) {
      return this.refuse(
        from,
        isKithError(err, 'ERR_NOTICE_SIGNATURE') ? 'notice_forged' : 'notice_malformed',
      );
    }
    const revoked = agentIdFromPublic(n.revoked);
    const verified = verifiedItems(this.verifier, publicFromAgentId(from), n);
    const entity = revoked === keys.id ? undefined : this.deps.entityOf(revoked);
    if (revoked !== keys.id && !entity) return this.count('notice_unrelated');
    store.addRevocation({
      agent: revoked,
      entity: entity ?? this.deps.entityOf(keys.id) ?? null,
      byAgent: from,
      at: n.at,
      reason: n.reason,
      detail: n.detail,
      evidence: Buffer.from(frame),
      verified,
    });
    this.count('notices_received');
    const event = { by: from, at: n.at, reason: n.reason, detail: n.detail, items: n.items.length, verified };
    if (revoked === keys.id) {
      logger.warn(event, 'a neighbour revoked this agent for spam');
      this.emit({ kind: 'revoked-by', ...event });
    } else {
      logger.warn({ ...event, agent: revoked, entity }, 'a neighbour revoked an agent we trust for spam');
      this.emit({ kind: 'reported', agent: revoked, entity: entity!, ...event });
      // Its evidence now counts beside our own complaints against that agent (evidenceCounted): a
      // complaint already open here may be enough now.
      if (revoked !== from && verified > 0) this.evaluate(revoked);
    }
  }

  /**
   * Revocations for spam concerning an entity, for `kith contacts` and `kith trust`: ours (byUs)
   * and those neighbours told us of, with how many evidence items verified here.
   */
  revocationsOf(entity: Fingerprint): SpamRevocationView[] {
    return this.deps.store.revocationsOf(entity).map((r) => ({
      agent: r.agent,
      byUs: r.byAgent === this.deps.keys.id,
      by: r.byAgent,
      at: new Date(r.at).toISOString(),
      reason: r.reason,
      detail: r.detail,
      verified: r.verified,
    }));
  }

  /** Writes traffic counts to the store. */
  flush(): void {
    if (this.dirty.size === 0) return;
    const { store } = this.deps;
    store.transaction(() => {
      for (const agent of this.dirty) {
        store.putNeighbour(this.neighbourRow(agent));
      }
    });
    this.dirty.clear();
  }
}

/** What spam control did, for tests and logs. */
export type SpamEvent =
  | { kind: 'counted'; against: AgentId; proven: boolean }
  | { kind: 'refused'; from: AgentId; code: string }
  | { kind: 'verdict'; from: AgentId; good: boolean }
  | { kind: 'cleared'; against: AgentId }
  | { kind: 'suspended'; agent: AgentId; reason: string }
  | { kind: 'lifted'; agent: AgentId }
  | { kind: 'revoked'; agent: AgentId; entity?: Fingerprint; reason: string; detail: string }
  | { kind: 'reinstated'; agent: AgentId }
  | ({ kind: 'revoked-by' } & NoticeFacts)
  | ({ kind: 'reported'; agent: AgentId; entity: Fingerprint } & NoticeFacts);

/** One revocation for spam as `kith contacts` shows it. */
export interface SpamRevocationView {
  /** The agent revoked. */
  agent: AgentId;
  /** True if this agent revoked it; else a neighbour told us (by). */
  byUs: boolean;
  by: AgentId;
  /** ISO 8601. */
  at: string;
  reason: string;
  detail: string;
  /** Evidence items (signed complaints) that verified. */
  verified: number;
}

/** What a revocation notice said, and how much of its evidence verified here. */
export interface NoticeFacts {
  by: AgentId;
  at: number;
  reason: string;
  detail: string;
  items: number;
  verified: number;
}

function originRow(
  recipient: string,
  s: Statement,
  link: string,
  from: AgentId,
  frame: Buffer,
): ComplaintRow {
  return {
    recipient,
    complaintId: s.complaintId,
    messageId: null,
    linkOut: link,
    successor: from,
    linkIn: null,
    predecessor: null,
    state: s.kind === StatementKind.complaint ? 'active' : 'withdrawn',
    lastAt: s.at,
    counted: false,
    countedAt: s.at,
    clearedAt: null,
    cutId: null,
    frame: Buffer.from(frame),
    proof: null,
  };
}

/** True if the hop record proves its neighbour handed us the packet (checked again, not trusted). */
function hasProof(hop: HopRecord): boolean {
  try {
    return verifyHopProof(hop, publicFromAgentId(hop.from));
  } catch {
    return false;
  }
}

/** The raw key inside an agent id (undefined for an id that is not an Ed25519 key). */
function keyOf(agent: AgentId): Buffer | undefined {
  try {
    return publicFromAgentId(agent);
  } catch {
    return undefined;
  }
}

/** The cut id of our revocation of `agent` (kept in its detail line). */
function lastCutId(store: SpamStore, agent: AgentId): string | undefined {
  return /cut ([0-9a-f]{32})$/.exec(store.neighbour(agent)?.detail ?? '')?.[1];
}

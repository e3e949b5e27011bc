import type { AgentId, Fingerprint, MessageId } from '../../common/ids.ts';
import { FrameType } from '../onion/wire.ts';
import type { NeighbourFacts, NeighbourVerdict, Refusal } from './decisions.ts';
import {
  SpamContext,
  type SpamControlDeps,
  type SpamCore,
  type SpamEvent,
  type StatementResult,
} from './context.ts';
import { Neighbours } from './neighbours.ts';
import { Cuts } from './cuts.ts';
import { Judge } from './judge.ts';
import { Revocations, type SpamRevocationView } from './revocations.ts';
import { ComplaintIntake } from './complaints.ts';
import { RecipientStatements } from './recipient.ts';

export type { NoticeFacts, RevocationAct, SpamControlDeps, SpamCore, SpamEvent } from './context.ts';
export type { SpamRevocationView } from './revocations.ts';

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

const FLUSH_EVERY_MS = 30_000;

/**
 * Spam control at one agent (docs/protocol.md 15): sends its user's complaints and withdrawals,
 * checks, counts and passes on those of others, judges its neighbours with the pure decisions,
 * and tells the node when to revoke. Durable state in SpamStore; traffic counts are flushed every
 * 30 s (a crash loses at most that much traffic, which only lowers thresholds a little).
 *
 * This class is the engine's and the node's door; each job is its own part:
 * - the recipient's statements and a list's carried complaints (recipient.ts),
 * - complaints, withdrawals and verdicts arriving at a hop (complaints.ts),
 * - cut notices in and out (cuts.ts),
 * - the facts about a neighbour and the verdict acted on (judge.ts; the decisions are decisions.ts),
 * - revocations: ours with their notice, our neighbours' notices, reinstating (revocations.ts),
 * - traffic and who is refused now (neighbours.ts),
 * - the rate limits and the first-contact credit, asked here (limits.ts, credit.ts).
 */
export class SpamControl implements SpamHooks {
  private readonly ctx: SpamContext;
  private readonly neighbours: Neighbours;
  private readonly cuts: Cuts;
  private readonly revocations: Revocations;
  private readonly judge: Judge;
  private readonly recipient: RecipientStatements;
  private readonly intake: ComplaintIntake;
  private flushTimer?: NodeJS.Timeout;

  constructor(private readonly deps: SpamControlDeps) {
    const ctx = (this.ctx = new SpamContext(deps));
    const evaluate = (agent: AgentId): void => void this.judge.evaluate(agent);
    this.neighbours = new Neighbours(ctx);
    this.cuts = new Cuts(ctx, this.neighbours, evaluate);
    this.revocations = new Revocations(ctx, this.neighbours, this.cuts, evaluate);
    this.judge = new Judge(ctx, this.neighbours, this.cuts, this.revocations);
    this.recipient = new RecipientStatements(ctx, this.cuts, evaluate);
    this.intake = new ComplaintIntake(ctx, this.cuts, evaluate, (origin) =>
      this.recipient.carriedChanged(origin),
    );
  }

  bind(core: SpamCore): void {
    this.ctx.core = core;
  }

  /** Starts the flush timer and settles verdicts that came due while the node was down. */
  start(): void {
    this.flushTimer = setInterval(() => {
      // A full disk (SQLITE_FULL) must not end the node (an uncaught throw in a timer did, in
      // test/faults/disk-full): the counts stay dirty and are written at a later flush.
      try {
        this.flush();
      } catch {
        this.ctx.count('spam_flush_failed');
      }
    }, FLUSH_EVERY_MS);
    this.flushTimer.unref();
    this.judge.settle();
    this.deps.store.pruneReceived(this.ctx.now());
    this.deps.credit?.prune(this.deps.hopMemoryMs);
    this.deps.limits?.prune();
  }

  stop(): void {
    clearInterval(this.flushTimer);
    this.judge.stop();
    this.flush();
  }

  /** Hears what spam control does (suspensions, revocations, refusals), for tests and the node. */
  onEvent(listener: (event: SpamEvent) => void): () => void {
    return this.ctx.onEvent(listener);
  }

  // ---- the recipient (recipient.ts) ------------------------------------------------------

  onReceived(id: MessageId, from: AgentId, inId: string, sender: Fingerprint): void {
    this.recipient.onReceived(id, from, inId, sender);
  }

  /** The user moved a message to Junk (RecipientStatements.complain). */
  complain(id: MessageId): StatementResult {
    return this.recipient.complain(id);
  }

  /** The user moved it out of Junk, not to Trash (RecipientStatements.withdraw). */
  withdraw(id: MessageId): StatementResult {
    return this.recipient.withdraw(id);
  }

  /** A list carries a copy's complaint on along the post's path (RecipientStatements.carry, 15.8). */
  carry(id: MessageId, originLink: string): StatementResult {
    return this.recipient.carry(id, originLink);
  }

  /** The user read a first contact and kept it (RecipientStatements.seen, 15.7). */
  seen(id: MessageId): 'sent' | 'already' | 'unknown' {
    return this.recipient.seen(id);
  }

  // ---- every hop: the doors --------------------------------------------------------------

  onPacket(from: AgentId): void {
    this.neighbours.onPacket(from);
  }

  refuses(from: AgentId): boolean {
    return this.neighbours.refuses(from);
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

  overAllowance(from: AgentId, bytes: number): boolean {
    return this.deps.limits?.forward(from, bytes) !== undefined;
  }

  /** The decayed packets a neighbour handed on so far (what its forwarding allowance grows with). */
  trafficOf(agent: AgentId): number {
    return this.neighbours.trafficOf(agent);
  }

  // ---- every hop: frames 6, 7, 8 ---------------------------------------------------------

  async onFrame(from: AgentId, frame: Buffer): Promise<void> {
    if (frame[1] === FrameType.signedComplaint) return this.intake.onComplaint(from, frame);
    if (frame[1] === FrameType.cut) return this.cuts.onCut(from, frame);
    if (frame[1] === FrameType.spamRevocation) return this.revocations.onNotice(from, frame);
    this.ctx.count('rejected_frame_type');
  }

  // ---- judging (judge.ts) and revocations (revocations.ts) --------------------------------

  /** The facts about a neighbour now (for the decision, `kith contacts`, tests). */
  facts(agent: AgentId): NeighbourFacts {
    return this.judge.facts(agent);
  }

  /** Decides about a neighbour and acts on it. */
  evaluate(agent: AgentId): NeighbourVerdict {
    return this.judge.evaluate(agent);
  }

  /** A human trusted this neighbour again (`kith trust`): its spam verdict is forgotten. */
  reinstate(agent: AgentId): void {
    this.revocations.reinstate(agent);
  }

  /** Revocations for spam concerning an entity, for `kith contacts` and `kith trust`. */
  revocationsOf(entity: Fingerprint): SpamRevocationView[] {
    return this.revocations.of(entity);
  }

  /** Writes traffic counts to the store. */
  flush(): void {
    this.neighbours.flush();
  }
}

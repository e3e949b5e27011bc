import type { Logger } from '../../common/logger.ts';
import type { AgentId, Fingerprint } from '../../common/ids.ts';
import type { Transport } from '../transport.ts';
import { publicFromAgentId, SignatureVerifier, type AgentKeys } from '../onion/keys.ts';
import type { Count } from '../onion/wire.ts';
import type { HopRecord } from '../delivery/store.ts';
import type { NeighbourVerdict, SpamPolicy } from './decisions.ts';
import type { SpamLimits } from './limits.ts';
import type { FirstContactCredit } from './credit.ts';
import type { ComplaintRow, SpamStore } from './store.ts';

/** What the delivery engine lends spam control (bound once, when the engine is built). */
export interface SpamCore {
  /** The hop memory record of a packet handed on, by its outgoing link id. */
  hopByOut(link: string): HopRecord | undefined;
  /** If `link` is a packet this agent sent: tells the sender side and returns true. */
  ownComplaint(link: string): boolean;
  /** The engine's counters (rejections are counted where every other one is). */
  count: Count;
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

/** What a revocation notice said, and how much of its evidence verified here. */
export interface NoticeFacts {
  by: AgentId;
  at: number;
  reason: string;
  detail: string;
  items: number;
  verified: number;
}

/** What the user's complaint, withdrawal or a list's carried complaint came to. */
export type StatementResult = 'sent' | 'queued' | 'already' | 'unknown';

/** Complaints older than this many half-lives weigh under 1/1000 and are not summed. */
const HORIZON_HALF_LIVES = 10;
/** How far ahead of our clock a recipient's statement may be. */
export const SKEW_MS = 5 * 60_000;

/**
 * What every part of spam control shares (agent/spam/control.ts builds one): its dependencies, the
 * clock, the signature verifier, the engine's counters, and the event listeners.
 */
export class SpamContext {
  core?: SpamCore;
  readonly verifier = new SignatureVerifier();
  readonly now: () => number;
  /** This agent's key as complaint rows name a recipient (hex). */
  readonly self: string;
  private readonly listeners = new Set<(event: SpamEvent) => void>();

  constructor(readonly deps: SpamControlDeps) {
    this.now = deps.now ?? Date.now;
    this.self = deps.keys.signPublic.toString('hex');
  }

  count(name: string): void {
    this.core?.count(name);
  }

  onEvent(listener: (event: SpamEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: SpamEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.deps.logger.error({ err }, 'spam event listener failed');
      }
    }
  }

  /** A frame of types 6-8 refused: counted, logged with its code and emitted. */
  refuse(from: AgentId, code: string, detail?: Record<string, unknown>): void {
    this.count(`rejected_${code}`);
    this.deps.logger.info({ from, code, ...detail }, 'complaint refused');
    this.emit({ kind: 'refused', from, code });
  }

  /** The open complaints against a neighbour young enough to weigh anything. */
  openAgainst(agent: AgentId, now: number): ComplaintRow[] {
    return this.deps.store.openAgainst(agent, now - HORIZON_HALF_LIVES * this.deps.policy.halfLifeMs);
  }

  /** True if this neighbour is revoked here (for spam by us, or by anyone for any reason). */
  isCutOff(agent: AgentId): boolean {
    const n = this.deps.store.neighbour(agent);
    return (n !== undefined && n.revokedAt !== null) || this.deps.isRevoked(agent);
  }
}

/** The raw key inside an agent id (undefined for an id that is not an Ed25519 key). */
export function keyOf(agent: AgentId): Buffer | undefined {
  try {
    return publicFromAgentId(agent);
  } catch {
    return undefined;
  }
}

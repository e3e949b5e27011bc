import type { AgentId, Fingerprint } from '../../common/ids.ts';
import { agentIdFromPublic, publicFromAgentId } from '../onion/keys.ts';
import { isKithError } from '../../common/errors.ts';
import type { NeighbourVerdict } from './decisions.ts';
import type { NeighbourRow } from './store.ts';
import { decodeNotice, encodeNotice, evidenceOf, verifiedItems } from './notice.ts';
import { keyOf, type SpamContext } from './context.ts';
import type { Neighbours } from './neighbours.ts';
import type { Cuts } from './cuts.ts';

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

/**
 * Revocations for spam (docs/protocol.md 15.4, 15.5): ours, with the signed notice carrying their
 * evidence; our neighbours' notices, about us (the owner is told) or about an agent we trust (its
 * evidence is kept and weighed); and a human's `kith trust` undoing ours.
 */
export class Revocations {
  constructor(
    private readonly ctx: SpamContext,
    private readonly neighbours: Neighbours,
    private readonly cuts: Cuts,
    /** Judges a neighbour again (agent/spam/judge.ts). */
    private readonly evaluate: (agent: AgentId) => void,
  ) {}

  /** Revokes a neighbour on the judge's verdict: notice with evidence, the node's act, cut notices. */
  revoke(
    agent: AgentId,
    n: NeighbourRow,
    verdict: Extract<NeighbourVerdict, { action: 'revoke' }>,
    now: number,
  ): void {
    const { ctx } = this;
    const { store, logger } = ctx.deps;
    const evidence = ctx.openAgainst(agent, now);
    const cutId = this.cuts.actId(agent, now);
    store.putNeighbour({
      ...n,
      revokedAt: now,
      reason: verdict.reason,
      detail: `${verdict.detail}; cut ${cutId}`,
    });
    // Still refused until the trust store has it revoked (the node sends the notice first).
    this.neighbours.refuse(agent);
    const entity = ctx.deps.entityOf(agent);
    logger.warn({ neighbour: agent, entity, why: verdict.detail }, 'revoking a neighbour for spam');
    const items = evidenceOf(evidence, keyOf);
    const notice = encodeNotice(ctx.deps.keys, {
      revoked: keyOf(agent) ?? Buffer.alloc(32),
      at: now,
      reason: verdict.reason,
      detail: verdict.detail,
      items,
    });
    store.addRevocation({
      agent,
      entity: entity ?? null,
      byAgent: ctx.deps.keys.id,
      at: now,
      reason: verdict.reason,
      detail: verdict.detail,
      evidence: notice,
      verified: items.length,
    });
    try {
      ctx.deps.revoke({ agent, entity, verdict, evidence, notice });
    } catch (err) {
      logger.error({ err: (err as Error).message, neighbour: agent }, 'revocation failed');
    }
    // The source is cut off: every complaint about its packets clears downstream.
    for (const row of evidence) this.cuts.send(row, cutId, now);
    ctx.emit({ kind: 'revoked', agent, entity, reason: verdict.reason, detail: verdict.detail });
  }

  /**
   * A human trusted this neighbour again (`kith trust`): forget the verdict and clear its open
   * complaints, so the old ones do not revoke it again at once. Why clear rather than keep: the
   * owner looked at it and decided; new complaints start a new count.
   */
  reinstate(agent: AgentId): void {
    const { ctx } = this;
    const { store } = ctx.deps;
    const n = store.neighbour(agent);
    this.neighbours.accept(agent);
    if (!n || (n.revokedAt === null && n.suspendedAt === null)) return;
    const now = ctx.now();
    store.putNeighbour({
      ...this.neighbours.row(agent),
      revokedAt: null,
      suspendedAt: null,
      reason: null,
      detail: null,
    });
    const cleared = store.clearOpenAgainst(agent, now, 'reinstated');
    ctx.deps.logger.info({ neighbour: agent, cleared }, 'neighbour trusted again: spam verdict forgotten');
    ctx.emit({ kind: 'reinstated', agent });
  }

  /** A neighbour's revocation notice: about us (tell the owner) or about an agent we know (keep it). */
  onNotice(from: AgentId, frame: Buffer): void {
    const { ctx } = this;
    const { store, keys, logger } = ctx.deps;
    let n;
    try {
      n = decodeNotice(ctx.verifier, from, frame);
    } catch (err) {
      return ctx.refuse(
        from,
        isKithError(err, 'ERR_NOTICE_SIGNATURE') ? 'notice_forged' : 'notice_malformed',
      );
    }
    const revoked = agentIdFromPublic(n.revoked);
    const verified = verifiedItems(ctx.verifier, publicFromAgentId(from), n);
    const entity = revoked === keys.id ? undefined : ctx.deps.entityOf(revoked);
    if (revoked !== keys.id && !entity) return ctx.count('notice_unrelated');
    store.addRevocation({
      agent: revoked,
      entity: entity ?? ctx.deps.entityOf(keys.id) ?? null,
      byAgent: from,
      at: n.at,
      reason: n.reason,
      detail: n.detail,
      evidence: Buffer.from(frame),
      verified,
    });
    ctx.count('notices_received');
    const event = { by: from, at: n.at, reason: n.reason, detail: n.detail, items: n.items.length, verified };
    if (revoked === keys.id) {
      logger.warn(event, 'a neighbour revoked this agent for spam');
      ctx.emit({ kind: 'revoked-by', ...event });
    } else {
      logger.warn({ ...event, agent: revoked, entity }, 'a neighbour revoked an agent we trust for spam');
      ctx.emit({ kind: 'reported', agent: revoked, entity: entity!, ...event });
      // Its evidence now counts beside our own complaints against that agent (evidenceCounted): a
      // complaint already open here may be enough now.
      if (revoked !== from && verified > 0) this.evaluate(revoked);
    }
  }

  /**
   * Revocations for spam concerning an entity, for `kith contacts` and `kith trust`: ours (byUs)
   * and those neighbours told us of, with how many evidence items verified here.
   */
  of(entity: Fingerprint): SpamRevocationView[] {
    return this.ctx.deps.store.revocationsOf(entity).map((r) => ({
      agent: r.agent,
      byUs: r.byAgent === this.ctx.deps.keys.id,
      by: r.byAgent,
      at: new Date(r.at).toISOString(),
      reason: r.reason,
      detail: r.detail,
      verified: r.verified,
    }));
  }
}

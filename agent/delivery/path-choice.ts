import type { AgentId, Fingerprint } from '../../common/ids.ts';
import type { Discovery } from '../routing/discovery.ts';
import type { CachedPath } from '../routing/path-cache.ts';
import type { EngineContext } from './context.ts';
import { firstHopsToDial } from './decide.ts';

/**
 * Paths to `to` this agent may use now: linked agents of the recipient, then cached paths, none
 * through an agent revoked since the path was learned (those are dropped from the cache).
 */
export function usablePaths(ctx: EngineContext, discovery: Discovery, to: Fingerprint): CachedPath[] {
  const revoked = (agent: AgentId) => ctx.trust.isRevoked(agent);
  if (discovery.cache.dropWhere(revoked) > 0) ctx.count('paths_dropped_revoked');
  return [...discovery.localPaths(to), ...discovery.cache.get(to)].filter((p) => !p.agents.some(revoked));
}

/**
 * Opens the link a path needs when none of the candidate first hops is linked (decide.ts,
 * `firstHopsToDial`): tries them in turn until one links. Candidates are the first hops of the
 * cached paths to `to` and the recipient's agents we may link with directly.
 */
export async function linkFirstHop(
  ctx: EngineContext,
  discovery: Discovery,
  to: Fingerprint,
  avoid: ReadonlySet<AgentId>,
): Promise<void> {
  if (!ctx.connect) return;
  const up = new Set(ctx.transport.neighbours());
  const candidates = [
    ...discovery.cache
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

/** Does the path go through an agent to avoid? */
export function overlaps(path: CachedPath, avoid: ReadonlySet<AgentId>): boolean {
  return path.agents.some((agent) => avoid.has(agent));
}

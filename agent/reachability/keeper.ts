import type { Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';

/** How many links an agent keeps open at least, so discovery always has neighbours to ask. */
export const MIN_LINKS = 8;
const CHECK_EVERY_MS = 30_000;

/**
 * Which trusted entities to redial now: none while we have enough links; otherwise the trusted
 * ones without a link, up to the missing count. Pure, so the rule reads in one place: idle links
 * may close (issue: "links kept only while useful"), but an agent never stays without
 * neighbours, after a restart least of all.
 */
export function entitiesToRedial(
  trusted: readonly Fingerprint[],
  linked: (entity: Fingerprint) => boolean,
  linkCount: number,
  minLinks = MIN_LINKS,
): Fingerprint[] {
  if (linkCount >= minLinks) return [];
  return trusted.filter((e) => !linked(e)).slice(0, minLinks - linkCount);
}

/** Redials trusted neighbours at start and every 30 s while fewer than MIN_LINKS are open. */
export class NeighbourKeeper {
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(
    private readonly deps: {
      /** Trusted entities other than ourselves, not revoked. */
      trusted: () => Fingerprint[];
      /** Has this entity an open link right now? */
      linked: (entity: Fingerprint) => boolean;
      linkCount: () => number;
      /** Dial one of the entity's agents (cached addresses, else ask neighbours). */
      reach: (entity: Fingerprint) => Promise<unknown>;
      log: Logger;
    },
  ) {}

  start(): void {
    void this.check();
    this.timer = setInterval(() => void this.check(), CHECK_EVERY_MS);
    this.timer.unref();
  }

  async check(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const { deps } = this;
      for (const entity of entitiesToRedial(deps.trusted(), deps.linked, deps.linkCount())) {
        await deps
          .reach(entity)
          .catch((err: Error) => deps.log.debug({ entity, err: err.message }, 'redial failed'));
      }
    } finally {
      this.running = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

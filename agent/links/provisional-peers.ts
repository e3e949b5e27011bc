import type { Connection } from '@libp2p/interface';
import type { AgentId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import { provisionalMayOpen, type ProvisionalEnd, type ProvisionalLimits } from '../trust/decisions.ts';
import type { TrustStore } from '../trust/store.ts';
import { HELLO_PROTOCOL } from './hello.ts';
import { INVITE_PROTOCOL } from './invite.ts';

/** An invitation being redeemed with a peer, and whether the peer's deadline passed meanwhile. */
export interface Redemption {
  deadlinePassed: boolean;
}

/** What the provisional peers need from the link manager. */
export interface ProvisionalPeersOptions {
  trust: TrustStore;
  log: Logger;
  /** How long an unknown peer may stay connected before its hello proves it. */
  deadlineMs: number;
  /** Bounds on unknown peers let in at once and per address (agent/trust/decisions.ts). */
  limits: ProvisionalLimits;
  clock: () => number;
  /** The libp2p node's connections of a peer (none when it is not running). */
  connectionsOf(peer: string): Connection[];
  /** An invitation being redeemed with this peer now: it, not the deadline, decides when it is over. */
  redemptionOf(peer: string): Redemption | undefined;
}

/**
 * Peers let in before their certificate is known (agent/links/gater.ts): their deadline, the
 * per-address admissions the gater's limits count, the verdict on each stream they open
 * (docs/protocol.md 4.1, `provisionalMayOpen`), and their end — promoted, refused, past the
 * deadline or gone — which the listeners hear once.
 */
export class ProvisionalPeers {
  private readonly deadlines = new Map<string, ReturnType<typeof setTimeout>>();
  /** When unknown peers were let in, by IP address (the per-address limit). */
  private readonly admissions = new Map<string, number[]>();
  /** Settles when a provisional peer is decided (see `mayOpen`). */
  private readonly decided = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  private readonly endListeners: ((peer: AgentId, end: ProvisionalEnd) => void)[] = [];

  constructor(private readonly options: ProvisionalPeersOptions) {}

  /** The gater's bounds on unknown peers. */
  get limits(): ProvisionalLimits {
    return this.options.limits;
  }

  /** Is this peer provisional now? */
  has(peer: string): boolean {
    return this.deadlines.has(peer);
  }

  /** Called whenever a provisional peer stops being provisional, and why. */
  onEnd(listener: (peer: AgentId, end: ProvisionalEnd) => void): void {
    this.endListeners.push(listener);
  }

  /** Unknown peers provisionally connected now, and how many came from this address lately (the gater's). */
  load(address: string): { provisionalOpen: number; recentFromAddress: number } {
    const since = this.options.clock() - this.options.limits.windowMs;
    const recent = (this.admissions.get(address) ?? []).filter((t) => t > since);
    if (recent.length === 0) this.admissions.delete(address);
    else this.admissions.set(address, recent);
    return { provisionalOpen: this.deadlines.size, recentFromAddress: recent.length };
  }

  /** The gater let this peer in provisionally: count it against its address and give it a deadline. */
  admit(peer: string, address?: string): void {
    if (address !== undefined) {
      this.admissions.set(address, [...(this.admissions.get(address) ?? []), this.options.clock()]);
    }
    if (this.deadlines.has(peer)) return;
    const timer = setTimeout(() => {
      const redemption = this.options.redemptionOf(peer);
      if (redemption !== undefined) {
        redemption.deadlinePassed = true; // the redemption decides when it is over
        return;
      }
      if (!this.options.trust.isTrustedAgent(peer as AgentId)) {
        this.options.log.info({ peer }, 'closing a provisional connection that never proved itself');
        this.drop(peer, 'deadline');
      } else {
        this.end(peer, 'promoted');
      }
    }, this.options.deadlineMs);
    timer.unref();
    this.deadlines.set(peer, timer);
  }

  /**
   * Per inbound stream: see agent/trust/decisions.ts, `provisionalMayOpen`. A stream held there
   * ('wait') is decided again once its peer is: promoted, or cut off.
   */
  mayOpen(peer: string, protocol: string): boolean | Promise<boolean> {
    const verdict = provisionalMayOpen({
      trusted: this.options.trust.isTrustedAgent(peer as AgentId),
      provisional: this.deadlines.has(peer),
      protocol: protocol === HELLO_PROTOCOL ? 'hello' : protocol === INVITE_PROTOCOL ? 'invite' : 'other',
      openInvitation: protocol === INVITE_PROTOCOL && this.options.trust.hasOpenInvitation(),
    });
    if (verdict === 'wait') return this.whenDecided(peer).then(() => this.mayOpen(peer, protocol));
    return verdict === 'open';
  }

  /**
   * Cuts off a peer that was let in provisionally and did not (or could not) prove itself: every
   * connection of it, the one its hello came on by name (the connection manager may not list a
   * just-opened inbound connection yet, so a hang-up by peer id alone could miss it). The
   * listeners hear `end` unless the peer's provisional state ended already.
   */
  drop(peer: string, end: 'refused' | 'deadline', connection?: Connection): void {
    this.end(peer, end);
    const connections = new Set(this.options.connectionsOf(peer));
    if (connection !== undefined) connections.add(connection);
    this.options.log.debug(
      { peer, end, connections: [...connections].map((c) => c.id) },
      'cutting off a provisional peer',
    );
    for (const c of connections) {
      // Graceful, so the refusal just written reaches the peer; libp2p bounds it (1 s) and aborts then.
      void c.close().catch((err: Error) => c.abort(err));
    }
  }

  /** Clears a provisional peer's deadline and tells the listeners why it ended (once). */
  end(peer: string, end: ProvisionalEnd): void {
    const timer = this.deadlines.get(peer);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.deadlines.delete(peer);
    this.decided.get(peer)?.resolve();
    this.decided.delete(peer);
    for (const listener of this.endListeners) listener(peer as AgentId, end);
  }

  /** On stop: no deadline left running, every held stream decided (its peer is gone with the node). */
  clear(): void {
    for (const timer of this.deadlines.values()) clearTimeout(timer);
    this.deadlines.clear();
    for (const { resolve } of this.decided.values()) resolve();
    this.decided.clear();
    this.admissions.clear();
  }

  private whenDecided(peer: string): Promise<void> {
    let entry = this.decided.get(peer);
    if (entry === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      entry = { promise, resolve };
      this.decided.set(peer, entry);
    }
    return entry.promise;
  }
}

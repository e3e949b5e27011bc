import type { Connection, PeerId } from '@libp2p/interface';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { KithError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';

/** A libp2p node as the upgrader sees it. */
export interface UpgradableNode {
  getConnections(peer?: PeerId): Connection[];
  dial(address: Multiaddr, options: { signal: AbortSignal; force: boolean }): Promise<Connection>;
  addEventListener(type: 'connection:open', listener: (event: CustomEvent<Connection>) => void): void;
  removeEventListener(type: 'connection:open', listener: (event: CustomEvent<Connection>) => void): void;
}

/** What the upgrader needs. */
export interface DirectUpgraderOptions {
  node: UpgradableNode;
  /** Only trusted agents get a direct connection from us. */
  isTrusted: (peer: string) => boolean;
  log: Logger;
  /** How long one WebRTC attempt may take (SDP through the relay, ICE, DTLS). */
  timeoutMs?: number;
  /** Close the relayed connection once the direct one is up (frees the relay). */
  closeRelayed?: boolean;
  /** Wait this long after a relayed connection opens, so the hello over it completes first. */
  settleMs?: number;
}

/** The facts that decide whether a new connection should be upgraded. */
export interface UpgradeFacts {
  relayed: boolean;
  /** We opened it: only the dialing side upgrades, so two sides never race with two offers. */
  outbound: boolean;
  trusted: boolean;
  /** A direct (non-relayed) connection to the peer is already open. */
  hasDirect: boolean;
}

/**
 * Upgrade a relayed link to a direct WebRTC one when we dialed it, the peer is trusted and no
 * direct connection exists. Hole punching over TCP/QUIC does not work on Node (NOTES.md), so
 * WebRTC (ICE with our trusted relay's STUN) is the only way two NATed agents get direct.
 */
export function shouldUpgrade(facts: UpgradeFacts): boolean {
  return facts.relayed && facts.outbound && facts.trusted && !facts.hasDirect;
}

/** Carried through a relay. A WebRTC connection's address names the relay too, but its data goes direct. */
export function isRelayed(connection: Pick<Connection, 'remoteAddr'>): boolean {
  const names = connection.remoteAddr.getComponents().map((c) => c.name);
  return names.includes('p2p-circuit') && !names.includes('webrtc');
}

/**
 * The WebRTC address of a peer we reach through a relay: the circuit address with /webrtc
 * inserted before the peer id (SDP goes through the relay, media does not).
 */
export function webrtcAddressFor(relayedAddress: Multiaddr, peer: string): Multiaddr {
  const text = relayedAddress.toString();
  const circuit = text.lastIndexOf('/p2p-circuit');
  if (circuit < 0) throw new KithError('ERR_BAD_ADDRESS', `not a relayed address: ${text}`);
  return multiaddr(`${text.slice(0, circuit)}/p2p-circuit/webrtc/p2p/${peer}`);
}

/**
 * Turns relayed links into direct WebRTC connections. Watches for relayed connections we open
 * to trusted agents (when they open, and again when the link comes up: the peer may have become
 * trusted only then, by an invitation) and dials the same peer over WebRTC; on success the relayed connection is
 * closed, so the link no longer depends on (or loads) the relay. On failure (symmetric NAT, no
 * STUN) the relayed connection simply stays: the relay is the fallback.
 */
export class DirectUpgrader {
  private readonly pending = new Map<string, Promise<Connection | undefined>>();
  private running = false;
  private readonly onOpen = (event: CustomEvent<Connection>): void => this.consider(event.detail);
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  /** Peers with an upgrade waiting for its settle delay (one per peer). */
  private readonly scheduled = new Set<string>();

  constructor(private readonly options: DirectUpgraderOptions) {}

  /**
   * A link to a trusted agent just came up (the transport's link change: after the hello, or
   * after an invitation was redeemed). A relayed connection we dialed before the peer was
   * trusted (an invitation accepted through a relay) was not upgraded when it opened: it is now.
   */
  linkUp(peer: PeerId): void {
    if (!this.running) return;
    for (const connection of this.options.node.getConnections(peer)) {
      if (connection.status === 'open') this.consider(connection);
    }
  }

  private consider(connection: Connection): void {
    const peer = connection.remotePeer.toString();
    const facts: UpgradeFacts = {
      relayed: isRelayed(connection),
      outbound: connection.direction === 'outbound',
      trusted: this.options.isTrusted(peer),
      hasDirect: this.hasDirect(connection.remotePeer),
    };
    if (!shouldUpgrade(facts) || this.scheduled.has(peer) || this.pending.has(peer)) return;
    this.scheduled.add(peer);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.scheduled.delete(peer);
      if (this.running) void this.upgrade(connection.remotePeer);
    }, this.options.settleMs ?? 500);
    this.timers.add(timer);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.options.node.addEventListener('connection:open', this.onOpen);
  }

  /** Stops upgrading; waits (bounded) for attempts in flight. */
  async stop(timeoutMs = 5_000): Promise<void> {
    this.running = false;
    this.options.node.removeEventListener('connection:open', this.onOpen);
    for (const pendingTimer of this.timers) clearTimeout(pendingTimer);
    this.timers.clear();
    this.scheduled.clear();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...this.pending.values()]),
      new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  /**
   * Opens a direct WebRTC connection to a peer we reach through a relay. Resolves with it, or
   * with undefined when there is no relayed connection to start from or WebRTC failed.
   */
  upgrade(peer: PeerId): Promise<Connection | undefined> {
    const key = peer.toString();
    let attempt = this.pending.get(key);
    if (attempt === undefined) {
      attempt = this.attempt(peer).finally(() => this.pending.delete(key));
      this.pending.set(key, attempt);
    }
    return attempt;
  }

  private hasDirect(peer: PeerId): boolean {
    return this.options.node.getConnections(peer).some((c) => c.status === 'open' && !isRelayed(c));
  }

  private async attempt(peer: PeerId): Promise<Connection | undefined> {
    const relayed = this.options.node.getConnections(peer).filter((c) => c.status === 'open' && isRelayed(c));
    if (relayed.length === 0 || this.hasDirect(peer)) return undefined;
    const target = webrtcAddressFor(relayed[0].remoteAddr, peer.toString());
    const started = Date.now();
    let direct: Connection;
    try {
      direct = await this.options.node.dial(target, {
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
        force: true,
      });
    } catch (err) {
      this.options.log.info(
        { peer: peer.toString(), err: (err as Error).message },
        'no direct connection; staying relayed',
      );
      return undefined;
    }
    this.options.log.info(
      { peer: peer.toString(), ms: Date.now() - started },
      'upgraded a relayed link to WebRTC',
    );
    if (this.options.closeRelayed !== false) {
      for (const connection of relayed) {
        void connection.close().catch((err: Error) => connection.abort(err));
      }
    }
    return direct;
  }
}

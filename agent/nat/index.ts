import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../common/logger.ts';
import type { KithLibp2p } from '../links/node.ts';
import type { Connection, IdentifyResult, PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { DirectUpgrader } from './direct.ts';
import { askStunPort, serveStunPort, STUN_PORT_PROTOCOL, type IceServers } from './ice.ts';
import { staleConnections } from './moved.ts';
import { ReservationSupervisor } from './reservations.ts';
import { StunResponder, trustedSourceIps } from './stun.ts';

export {
  natExtras,
  relayServerInit,
  stunServersFor,
  DEFAULT_STUN_PORT,
  type NatExtrasOptions,
  type NatNodeExtras,
} from './extras.ts';
export { IceServers, STUN_PORT_PROTOCOL, askStunPort, hostOf } from './ice.ts';
export { ReservationSupervisor, relayCircuitAddress, retryDelay, type RelayStatus } from './reservations.ts';
export { StunResponder, trustedSourceIps } from './stun.ts';
export { DirectUpgrader, shouldUpgrade, isRelayed, webrtcAddressFor } from './direct.ts';
export { staleConnections } from './moved.ts';

/** What createNat needs. */
export interface NatOptions {
  config: Config['p2p'];
  /** The started libp2p node built with natExtras(config). */
  node: KithLibp2p;
  /** Is this peer a trusted agent right now (TrustStore.isTrustedAgent)? */
  isTrusted: (peer: string) => boolean;
  log: Logger;
  /** Upgrade relayed links we open to WebRTC on our own (default true); upgrade() works either way. */
  autoUpgrade?: boolean;
  /**
   * The link manager's link changes (Transport.onLinkChange): a relayed link that became trusted
   * after it opened (an invitation) is upgraded when it comes up.
   */
  onLinkChange?: (handler: (peer: string, up: boolean) => void) => void;
  /** natExtras(config).ice: filled with each relay's STUN port as the relays tell it. */
  ice?: IceServers;
}

/** The running NAT layer of one agent. */
export interface Nat {
  /** Keeps our reservations with config.relays (absent when none are configured). */
  readonly reservations: ReservationSupervisor | undefined;
  /** Answers STUN for trusted peers (only on a relay-enabled node with config.stunPort > 0). */
  readonly stun: StunResponder | undefined;
  /** Upgrades relayed links to direct WebRTC connections. */
  readonly direct: DirectUpgrader;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The NAT layer beside the link manager: the relay server itself is a libp2p service
 * (natExtras), this adds what libp2p does not do for us: supervised reservations, a STUN
 * responder for trusted peers, and WebRTC upgrades of relayed links.
 */
export function createNat(options: NatOptions): Nat {
  const { config, node, isTrusted, log } = options;
  const reservations =
    config.relays.length > 0
      ? new ReservationSupervisor({
          node,
          relays: config.relays,
          log: log.child({ part: 'relay-reservations' }),
        })
      : undefined;
  // Only relays answer STUN: ICE asks only the relays an agent reserves with (6.3).
  const stun =
    config.relay.enabled && config.stunPort > 0
      ? new StunResponder({
          port: config.stunPort,
          isAllowed: (ip) => trustedSourceIps(node.getConnections(), isTrusted).has(ip),
          log: log.child({ part: 'stun' }),
        })
      : undefined;
  const direct = new DirectUpgrader({ node, isTrusted, log: log.child({ part: 'webrtc' }) });
  const autoUpgrade = options.autoUpgrade ?? true;
  // linkUp does nothing unless the upgrader runs (autoUpgrade and started).
  options.onLinkChange?.((peer, up) => {
    if (up) direct.linkUp(peerIdFromString(peer));
  });
  // A relay closes a trusted peer's connections from its old address once it connects from a
  // new one, so relayed dials to it use the live connection (see staleConnections).
  const onOpen = (event: CustomEvent<Connection>): void => {
    const fresh = event.detail;
    if (!isTrusted(fresh.remotePeer.toString())) return;
    const others = node.getConnections(fresh.remotePeer);
    for (const id of staleConnections(fresh, others)) {
      const stale = others.find((c) => c.id === id);
      log.info(
        { peer: fresh.remotePeer.toString(), from: stale?.remoteAddr.toString() },
        'closing a connection from a moved peer',
      );
      stale?.abort(new Error('the peer connected from a new address'));
    }
  };
  // Learn each relay's STUN port once identify says it serves the question (on every new
  // connection to it: a restarted relay may have another port).
  const ice = options.ice;
  const learn = (relay: PeerId): void => {
    if (ice === undefined) return;
    askStunPort(node, relay, log)
      .then((port) => {
        ice.learn(relay.toString(), port);
        log.debug({ relay: relay.toString(), port }, 'learned the relay STUN port');
      })
      .catch(() => undefined);
  };
  const onIdentify = (event: CustomEvent<IdentifyResult>): void => {
    const { peerId, protocols } = event.detail;
    if (ice?.isRelay(peerId.toString()) && protocols.includes(STUN_PORT_PROTOCOL)) learn(peerId);
  };
  return {
    reservations,
    stun,
    direct,
    async start() {
      await stun?.start();
      if (config.relay.enabled) {
        await serveStunPort(node, () => (stun === undefined ? 0 : stun.port()), isTrusted);
      }
      if (ice !== undefined) {
        node.addEventListener('peer:identify', onIdentify);
        // Relays we were linked with before the NAT layer started (identify already happened).
        const linked = new Map(node.getConnections().map((c) => [c.remotePeer.toString(), c.remotePeer]));
        for (const [peer, id] of linked) if (ice.isRelay(peer)) learn(id);
      }
      reservations?.start();
      if (autoUpgrade) direct.start();
      if (config.relay.enabled) node.addEventListener('connection:open', onOpen);
    },
    async stop() {
      node.removeEventListener('connection:open', onOpen);
      node.removeEventListener('peer:identify', onIdentify);
      if (config.relay.enabled) await node.unhandle(STUN_PORT_PROTOCOL).catch(() => undefined);
      await direct.stop();
      await reservations?.stop();
      await stun?.stop();
    },
  };
}

import type { ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { ProvisionalLimits } from '../trust/decisions.ts';
import type { TrustStore } from '../trust/store.ts';

/** The gater's view of peers we let in before knowing their certificate. */
export interface GaterState {
  /**
   * We are dialing this peer on purpose (an invitation's inviter), or an address without a peer id
   * (`kith trust --address`) that this connection goes to (`host:port`, see `outboundKey`).
   */
  expectsOutbound(peer: string, address: string | undefined): boolean;
  /** Unknown peers provisionally connected now, and how many came from this address lately. */
  provisionalLoad(address: string): { provisionalOpen: number; recentFromAddress: number };
  /** Bounds on unknown peers (agent/trust/decisions.ts). */
  readonly limits: ProvisionalLimits;
  /** Called when a peer is let in provisionally, so the link manager can give it a deadline. */
  onProvisional(peer: string, address?: string): void;
}

/**
 * Refuses, at the earliest point libp2p allows (right after the Noise handshake proves the peer
 * id), every revoked peer, and every unknown one past the provisional limits. The decision is
 * agent/trust/decisions.ts `admit`; what a provisional peer may then open is decided per stream
 * (provisional-peers.ts, `mayOpen`). Relay hooks: only trusted peers may reserve, relay through
 * us, or be relayed to us.
 */
export function createGater(trust: TrustStore, state: GaterState): ConnectionGater {
  const trusted = (peer: PeerId): boolean => trust.isTrustedAgent(peer.toString() as never);
  return {
    denyDialPeer: (peer) => trust.isRevokedAgent(peer.toString()),
    denyInboundEncryptedConnection: (peer, connection) => {
      const address = addressKey(connection);
      const admission = trust.admission(peer.toString(), state.provisionalLoad(address), state.limits);
      if (admission === 'provisional') state.onProvisional(peer.toString(), address);
      return admission === 'refused';
    },
    denyOutboundEncryptedConnection: (peer, connection) => {
      const id = peer.toString();
      if (trust.isRevokedAgent(id)) return true;
      if (trusted(peer)) return false;
      if (state.expectsOutbound(id, outboundKey(connection))) {
        state.onProvisional(id);
        return false;
      }
      return true;
    },
    denyInboundRelayReservation: (source) => !trusted(source),
    denyOutboundRelayedConnection: (source, destination) => !(trusted(source) && trusted(destination)),
    denyInboundRelayedConnection: (relay, remote) =>
      !trusted(relay) ||
      trust.admission(remote.toString(), state.provisionalLoad(relayKey(relay)), state.limits) === 'refused',
  };
}

/** The IP address a connection comes from (the rate limit's key); a relayed one counts as its relay. */
export function addressKey(connection: Pick<MultiaddrConnection, 'remoteAddr'> | undefined): string {
  const address: Multiaddr | undefined = connection?.remoteAddr;
  if (address === undefined) return 'unknown';
  const components = address.getComponents();
  const circuit = components.findIndex((c) => c.name === 'p2p-circuit');
  if (circuit >= 0) {
    const relay = components.slice(0, circuit).find((c) => c.name === 'p2p')?.value;
    if (relay !== undefined) return `relay:${relay}`;
  }
  const ip = components.find((c) => c.name === 'ip4' || c.name === 'ip6');
  return ip?.value ?? address.toString();
}

/** `host:port` an outbound connection went to, or undefined for relayed and other connections. */
export function outboundKey(
  connection: Pick<MultiaddrConnection, 'remoteAddr'> | undefined,
): string | undefined {
  const components = connection?.remoteAddr?.getComponents() ?? [];
  if (components.some((c) => c.name === 'p2p-circuit')) return undefined;
  // The transport may connect to a DNS name itself (TCP does): then the name is the key.
  const host = components.find((c) => ['ip4', 'ip6', 'dns4', 'dns6', 'dns'].includes(c.name))?.value;
  const port = components.find((c) => c.name === 'tcp' || c.name === 'udp')?.value;
  return host === undefined || port === undefined ? undefined : `${host}:${port}`;
}

function relayKey(relay: PeerId): string {
  return `relay:${relay.toString()}`;
}

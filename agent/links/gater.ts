import type { ConnectionGater, PeerId } from '@libp2p/interface';
import type { TrustStore } from '../trust/store.ts';

/** The gater's view of peers we have decided to dial ourselves before knowing their certificate. */
export interface GaterState {
  /** We are dialing this peer on purpose (an invitation's inviter, a fingerprint-trusted address). */
  expectsOutbound(peer: string): boolean;
  /** Called when a peer is let in provisionally, so the link manager can give it a deadline. */
  onProvisional(peer: string): void;
}

/**
 * Refuses, at the earliest point libp2p allows (right after the Noise handshake proves the peer
 * id), every peer that is not a certified agent of a trusted entity. Provisional admission is
 * decided by agent/trust/decisions.ts. Relay hooks: only trusted peers may reserve, relay through
 * us, or be relayed to us.
 */
export function createGater(trust: TrustStore, state: GaterState): ConnectionGater {
  const trusted = (peer: PeerId): boolean => trust.isTrustedAgent(peer.toString() as never);
  return {
    denyDialPeer: (peer) => trust.isRevokedAgent(peer.toString()),
    denyInboundEncryptedConnection: (peer) => {
      const admission = trust.admission(peer.toString());
      if (admission === 'provisional') state.onProvisional(peer.toString());
      return admission === 'refused';
    },
    denyOutboundEncryptedConnection: (peer) => {
      const id = peer.toString();
      if (trust.isRevokedAgent(id)) return true;
      if (trusted(peer)) return false;
      if (state.expectsOutbound(id)) {
        state.onProvisional(id);
        return false;
      }
      return true;
    },
    denyInboundRelayReservation: (source) => !trusted(source),
    denyOutboundRelayedConnection: (source, destination) => !(trusted(source) && trusted(destination)),
    denyInboundRelayedConnection: (relay, remote) =>
      !trusted(relay) || trust.admission(remote.toString()) === 'refused',
  };
}

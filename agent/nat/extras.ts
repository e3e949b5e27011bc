import {
  circuitRelayServer,
  circuitRelayTransport,
  type CircuitRelayServerInit,
} from '@libp2p/circuit-relay-v2';
import { uPnPNAT } from '@libp2p/upnp-nat';
import { webRTC } from '@libp2p/webrtc';
import type { Config } from '../../config/schema.ts';
import { KithError } from '../../common/errors.ts';
import type { NodeExtras } from '../links/node.ts';
import { hostOf, IceServers } from './ice.ts';

/** The IANA STUN port: where a relay answers STUN unless p2p.stunPort says otherwise. */
export const DEFAULT_STUN_PORT = 3478;

/**
 * How long one address dial may take. WebRTC over a relay does SDP through the relay, ICE and
 * DTLS: 0.2–0.3 s measured across two NATs, seconds on slow links (NOTES.md: raise it to 6 s).
 */
export const ADDRESS_DIAL_TIMEOUT_MS = 6_000;

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Relay-server settings from our config. libp2p's default per-connection limits (2 min,
 * 128 KiB) exist to protect public relays from strangers; ours serves trusted neighbours only
 * (the gater refuses every other reservation and hop), so it applies its own: a cap on
 * reservations and, if configured, on bytes per relayed connection — never a duration.
 */
export function relayServerInit(relay: Config['p2p']['relay']): CircuitRelayServerInit {
  const reservations: NonNullable<CircuitRelayServerInit['reservations']> = {
    maxReservations: relay.maxReservations,
    applyDefaultLimit: false,
  };
  if (relay.maxBytesPerConnection > 0) {
    // libp2p applies a data limit only together with a duration limit; make the duration
    // the longest a timer allows. Limited connections carry only protocols that opt in with
    // runOnLimitedConnection (all of Kith's do).
    reservations.applyDefaultLimit = true;
    reservations.defaultDataLimit = BigInt(relay.maxBytesPerConnection);
    reservations.defaultDurationLimit = MAX_TIMER_MS;
  }
  return { reservations };
}

/**
 * STUN servers on the given port for a list of relays (for a fixed list; agents normally learn
 * each relay's port, see IceServers). Never libp2p's third-party defaults: they would learn who
 * we talk to.
 */
export function stunServersFor(relays: readonly string[], port = DEFAULT_STUN_PORT): string[] {
  const servers = new Set<string>();
  for (const relay of relays) {
    const host = hostOf(relay);
    servers.add(host.includes(':') ? `stun:[${host}]:${port}` : `stun:${host}:${port}`);
  }
  return [...servers];
}

/** What the NAT layer adds to the node factory for one agent's p2p config. */
export interface NatExtrasOptions {
  /**
   * A fixed list of STUN servers for ICE instead of the default: each configured relay on the
   * STUN port it tells us (IceServers, filled by createNat).
   */
  stunServers?: string[];
}

/** The node extras, and the ICE server list createNat fills as relays tell their STUN ports. */
export type NatNodeExtras = NodeExtras & { ice: IceServers };

/**
 * Transports, services and listen addresses of the NAT layer. Every agent can dial relayed and
 * WebRTC addresses and accept WebRTC upgrades; only a relay-enabled agent runs the relay server;
 * UPnP only when configured (it talks to the router on the LAN).
 */
export function natExtras(p2p: Config['p2p'], options: NatExtrasOptions = {}): NatNodeExtras {
  // loadConfig refuses this already; configs built in code (tests, embedders) meet it here.
  if (p2p.directory && p2p.relay.enabled) {
    throw new KithError(
      'ERR_CONFIG_INVALID',
      'a directory never relays: p2p.directory and p2p.relay.enabled cannot both be set',
      'run the directory and the relay on different nodes',
    );
  }
  const ice = new IceServers(p2p.relays, options.stunServers);
  const services: NonNullable<NodeExtras['services']> = {};
  if (p2p.relay.enabled) services.relay = circuitRelayServer(relayServerInit(p2p.relay)) as never;
  // The router's word that the mapping exists is taken as confirmation: confirming by dial-back
  // would need @libp2p/autonat (not a dependency), and neighbours drop addresses that prove
  // wrong anyway (agent/reachability).
  if (p2p.upnp)
    services.upnp = uPnPNAT({ portMappingDescription: 'kith', autoConfirmAddress: true }) as never;
  return {
    transports: [
      circuitRelayTransport({ reservationCompletionTimeout: 5_000 }),
      // Read at every attempt: the relays' STUN ports are learned after the node starts. An
      // empty list stays empty (libp2p's third-party defaults replace only a missing one).
      webRTC({ rtcConfiguration: () => ({ iceServers: ice.urls().map((urls) => ({ urls })) }) }),
    ],
    services,
    listen: ['/webrtc'],
    addressDialTimeout: ADDRESS_DIAL_TIMEOUT_MS,
    ice,
  };
}

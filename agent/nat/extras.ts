import {
  circuitRelayServer,
  circuitRelayTransport,
  type CircuitRelayServerInit,
} from '@libp2p/circuit-relay-v2';
import { uPnPNAT } from '@libp2p/upnp-nat';
import { webRTC } from '@libp2p/webrtc';
import { multiaddr } from '@multiformats/multiaddr';
import type { Config } from '../../config/schema.ts';
import { KithError } from '../../common/errors.ts';
import type { NodeExtras } from '../links/node.ts';

/** The IANA STUN port: a relay's STUN responder is looked for there unless told otherwise. */
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
 * STUN servers for WebRTC: the trusted relays we reserve with, on their STUN port. Never an
 * empty list replaced by libp2p's defaults (third-party servers would learn who we talk to).
 */
export function stunServersFor(relays: readonly string[], port = DEFAULT_STUN_PORT): string[] {
  const servers = new Set<string>();
  for (const relay of relays) {
    const host = hostOf(relay);
    servers.add(host.includes(':') ? `stun:[${host}]:${port}` : `stun:${host}:${port}`);
  }
  return [...servers];
}

/** The IP or DNS name at the front of a multiaddr. */
export function hostOf(address: string): string {
  let components;
  try {
    components = multiaddr(address).getComponents();
  } catch (err) {
    throw new KithError('ERR_BAD_ADDRESS', `not a multiaddr: ${address}`, undefined, { cause: err });
  }
  const first = components[0];
  if (first === undefined || !['ip4', 'ip6', 'dns', 'dns4', 'dns6'].includes(first.name) || !first.value) {
    throw new KithError(
      'ERR_BAD_ADDRESS',
      `a relay address must start with an IP or a DNS name: ${address}`,
      'e.g. /ip4/198.51.100.7/tcp/4410/p2p/12D3KooW...',
    );
  }
  return first.value;
}

/** What the NAT layer adds to the node factory for one agent's p2p config. */
export interface NatExtrasOptions {
  /** STUN servers for ICE; defaults to the configured relays on DEFAULT_STUN_PORT. */
  stunServers?: string[];
}

/**
 * Transports, services and listen addresses of the NAT layer. Every agent can dial relayed and
 * WebRTC addresses and accept WebRTC upgrades; only a relay-enabled agent runs the relay server;
 * UPnP only when configured (it talks to the router on the LAN).
 */
export function natExtras(p2p: Config['p2p'], options: NatExtrasOptions = {}): NodeExtras {
  // loadConfig refuses this already; configs built in code (tests, embedders) meet it here.
  if (p2p.directory && p2p.relay.enabled) {
    throw new KithError(
      'ERR_CONFIG_INVALID',
      'a directory never relays: p2p.directory and p2p.relay.enabled cannot both be set',
      'run the directory and the relay on different nodes',
    );
  }
  const stunServers = options.stunServers ?? stunServersFor(p2p.relays);
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
      webRTC({ rtcConfiguration: { iceServers: stunServers.map((urls) => ({ urls })) } }),
    ],
    services,
    listen: ['/webrtc'],
    addressDialTimeout: ADDRESS_DIAL_TIMEOUT_MS,
  };
}

import type { PeerId, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Logger } from '../../common/logger.ts';
import { readFrames, readJson, writeJson } from '../links/frames.ts';
import type { KithLibp2p } from '../links/node.ts';
import { KithError } from '../../common/errors.ts';

/** A relay tells its trusted peers on which UDP port it answers STUN (docs/protocol.md 6.2). */
export const STUN_PORT_PROTOCOL = '/kith/stun-port/1';
const TIMEOUT_MS = 5_000;

/** The answer on STUN_PORT_PROTOCOL: the responder's UDP port, 0 when it runs none. */
export interface StunPortMessage {
  port: number;
}

/**
 * The STUN servers ICE uses: each trusted relay we reserve with, on the port it told us
 * (STUN_PORT_PROTOCOL), never a guessed one and never a third-party server. Read by the WebRTC
 * transport at every connection attempt, filled by the NAT layer as relays answer.
 */
export class IceServers {
  private readonly ports = new Map<string, number>();

  /**
   * @param relays config.p2p.relays (multiaddrs ending in /p2p/<relay agent id>)
   * @param fixed  a fixed list instead (tests that point ICE somewhere on purpose)
   */
  constructor(
    private readonly relays: readonly string[],
    private readonly fixed?: readonly string[],
  ) {}

  /** Is this peer one of our relays? */
  isRelay(peer: string): boolean {
    return this.relays.some((r) => relayPeerOf(r) === peer);
  }

  /** A relay told us its STUN port (0: it answers no STUN). */
  learn(relayPeer: string, port: number): void {
    this.ports.set(relayPeer, port);
  }

  /** `stun:` URLs for ICE: fixed ones, else every relay whose STUN port we learned. */
  urls(): string[] {
    if (this.fixed !== undefined) return [...this.fixed];
    const servers = new Set<string>();
    for (const relay of this.relays) {
      const port = this.ports.get(relayPeerOf(relay) ?? '');
      if (port === undefined || port === 0) continue;
      const host = hostOf(relay);
      servers.add(host.includes(':') ? `stun:[${host}]:${port}` : `stun:${host}:${port}`);
    }
    return [...servers];
  }
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

function relayPeerOf(relay: string): string | undefined {
  try {
    return multiaddr(relay)
      .getComponents()
      .findLast((c) => c.name === 'p2p')?.value;
  } catch {
    return undefined;
  }
}

/** Relay side: answers trusted peers with our STUN port (0 when we run no responder). */
export async function serveStunPort(
  node: KithLibp2p,
  port: () => number,
  isTrusted: (peer: string) => boolean,
): Promise<void> {
  await node.handle(STUN_PORT_PROTOCOL, (stream: Stream, connection) => {
    if (!isTrusted(connection.remotePeer.toString())) {
      stream.abort(new Error('not a trusted agent'));
      return;
    }
    const reply: StunPortMessage = { port: port() };
    void writeJson(stream, reply)
      .then(() => stream.close())
      .catch((err: Error) => stream.abort(err));
  });
}

/** Agent side: asks a relay for its STUN port. */
export async function askStunPort(node: KithLibp2p, relay: PeerId | string, log: Logger): Promise<number> {
  const peer = typeof relay === 'string' ? peerIdFromString(relay) : relay;
  const signal = AbortSignal.timeout(TIMEOUT_MS);
  const stream = await node.dialProtocol(peer, STUN_PORT_PROTOCOL, { signal });
  try {
    const answer = await readJson<StunPortMessage>(readFrames(stream, 1024));
    const port = Number(answer.port);
    if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`bad STUN port ${answer.port}`);
    return port;
  } catch (err) {
    log.debug({ err, relay: peer.toString() }, 'the relay did not tell its STUN port');
    throw err;
  } finally {
    await stream.close({ signal }).catch(() => stream.abort(new Error('closing')));
  }
}

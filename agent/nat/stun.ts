import { createSocket, type Socket } from 'node:dgram';
import type { Connection } from '@libp2p/interface';
import { KithError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { buildBindingResponse, parseBindingRequest } from './stun-codec.ts';

/** What the STUN responder needs. */
export interface StunResponderOptions {
  /** UDP port to answer on (0 = any, for tests). */
  port: number;
  /** Address to bind; all IPv4 interfaces by default. */
  host?: string;
  /** Whether a request from this source IP gets an answer (see trustedSourceIps). */
  isAllowed: (ip: string) => boolean;
  log: Logger;
}

/**
 * A STUN binding responder (RFC 5389) for trusted peers only. STUN carries no authentication,
 * so "trusted" is decided by source IP: we answer an IP only while a trusted agent holds an
 * authenticated, non-relayed libp2p connection to us from that IP. A NATed neighbour reaches
 * us over TCP from its NAT's public address, and its ICE agent asks from that same address.
 * Strangers get silence (no error reply, nothing to amplify); one sharing a trusted peer's NAT
 * learns only its own public address, which it could learn anyway.
 */
export class StunResponder {
  private socket: Socket | undefined;
  /** Requests answered and ignored, for tests and `kith status`. */
  readonly counts = { answered: 0, ignored: 0 };

  constructor(private readonly options: StunResponderOptions) {}

  async start(): Promise<void> {
    if (this.socket !== undefined) return;
    const socket = createSocket({ type: 'udp4' });
    socket.on('message', (packet, remote) => this.onPacket(socket, packet, remote.address, remote.port));
    socket.on('error', (err) => this.options.log.warn({ err }, 'STUN socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) =>
        reject(
          new KithError(
            'ERR_STUN_LISTEN',
            `cannot listen for STUN on UDP port ${this.options.port}: ${err.message}`,
            'choose another p2p.stunPort, or 0 to turn STUN off',
            { cause: err },
          ),
        ),
      );
      socket.bind(this.options.port, this.options.host ?? '0.0.0.0', () => resolve());
    });
    this.socket = socket;
  }

  /** The bound UDP port. */
  port(): number {
    if (this.socket === undefined)
      throw new KithError('ERR_NOT_STARTED', 'the STUN responder is not started');
    return this.socket.address().port;
  }

  async stop(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private onPacket(socket: Socket, packet: Buffer, address: string, port: number): void {
    const request = parseBindingRequest(packet);
    if (request === undefined || !this.options.isAllowed(address)) {
      this.counts.ignored++;
      return;
    }
    this.counts.answered++;
    socket.send(buildBindingResponse(request.transactionId, address, port), port, address);
  }
}

/**
 * Source IPs that may ask us STUN questions: those of open, direct (not relayed) connections
 * from trusted agents.
 */
export function trustedSourceIps(
  connections: readonly Pick<Connection, 'remotePeer' | 'remoteAddr' | 'status'>[],
  isTrusted: (peer: string) => boolean,
): Set<string> {
  const ips = new Set<string>();
  for (const connection of connections) {
    if (connection.status !== 'open' || !isTrusted(connection.remotePeer.toString())) continue;
    const components = connection.remoteAddr.getComponents();
    // Relayed and WebRTC connections show the relay's address, not the peer's.
    if (components.some((c) => c.name === 'p2p-circuit' || c.name === 'webrtc')) continue;
    const first = components[0];
    if ((first?.name === 'ip4' || first?.name === 'ip6') && first.value) ips.add(first.value);
  }
  return ips;
}

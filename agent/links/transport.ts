import type { Connection, PeerId, Stream, StreamMessageEvent } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Logger } from '../../common/logger.ts';
import { KithError } from '../../common/errors.ts';
import type { AgentId } from '../../common/ids.ts';
import { MAX_FRAME_BYTES, type Transport } from '../transport.ts';
import { FrameSlot, type FrameHandler } from './frame-slot.ts';
import { FrameDecoder, writeFrame } from './frames.ts';
import type { KithLibp2p } from './node.ts';

export const FRAMES_PROTOCOL = '/kith/frames/1';

/** Decoded frames waiting for the handler before we stop granting the sender more window. */
const RECEIVE_HIGH_WATER = 1024 * 1024;
const RECEIVE_LOW_WATER = 256 * 1024;

type LinkHandler = (peer: AgentId, up: boolean) => void;

/**
 * The Transport the protocol core talks to, over libp2p. Each side sends on one long-lived
 * stream it opened to each neighbour (so two simultaneous openers never race for one stream)
 * and reads the stream the neighbour opened; order holds per neighbour and direction.
 * Backpressure end to end: send() resolves once yamux accepted the bytes, and the reader awaits
 * the frame handler before reading on, so a slow receiver slows the sender.
 */
export class LinkTransport implements Transport {
  /** Frames that arrive before the receiver registered wait for it (FrameSlot). */
  private readonly frames = new FrameSlot();
  private readonly linkHandlers: LinkHandler[] = [];
  private readonly outbound = new Map<string, Promise<Stream>>();
  private readonly tails = new Map<string, Promise<void>>();
  private readonly up = new Set<AgentId>();
  /** Last time a frame went either way per neighbour (idle links are closed). */
  readonly lastActivity = new Map<string, number>();

  constructor(
    readonly self: AgentId,
    private readonly node: KithLibp2p,
    private readonly log: Logger,
  ) {}

  neighbours(): AgentId[] {
    return [...this.up];
  }

  isUp(peer: AgentId): boolean {
    return this.up.has(peer);
  }

  async send(to: AgentId, frame: Uint8Array): Promise<void> {
    if (frame.length > MAX_FRAME_BYTES) {
      throw new KithError(
        'ERR_FRAME_TOO_LARGE',
        `a frame of ${frame.length} bytes exceeds ${MAX_FRAME_BYTES}`,
      );
    }
    if (!this.up.has(to)) throw new KithError('ERR_NO_LINK', `no open link to ${to}`);
    const previous = this.tails.get(to) ?? Promise.resolve();
    const mine = previous.catch(() => undefined).then(() => this.write(to, frame));
    const tail = mine.catch(() => undefined);
    this.tails.set(to, tail);
    void tail.then(() => {
      if (this.tails.get(to) === tail) this.tails.delete(to);
    });
    return mine;
  }

  private async write(to: AgentId, frame: Uint8Array): Promise<void> {
    let stream: Stream;
    try {
      stream = await this.streamTo(to);
      await writeFrame(stream, frame);
    } catch (err) {
      this.outbound.delete(to);
      if (err instanceof KithError) throw err;
      throw new KithError('ERR_NO_LINK', `the link to ${to} failed: ${(err as Error).message}`, undefined, {
        cause: err,
      });
    }
    this.lastActivity.set(to, Date.now());
  }

  private streamTo(to: AgentId): Promise<Stream> {
    let pending = this.outbound.get(to);
    if (pending === undefined) {
      pending = this.openStream(peerIdFromString(to));
      this.outbound.set(to, pending);
      pending.catch(() => this.outbound.delete(to));
    }
    return pending;
  }

  private async openStream(peer: PeerId): Promise<Stream> {
    const connection = preferDirect(this.node.getConnections(peer));
    if (connection === undefined) throw new KithError('ERR_NO_LINK', `no open connection to ${peer}`);
    const stream = await connection.newStream(FRAMES_PROTOCOL, {
      signal: AbortSignal.timeout(10_000),
      runOnLimitedConnection: true,
    });
    // A long-lived stream: no inactivity timeout; the link manager closes idle links instead.
    stream.inactivityTimeout = 0;
    stream.addEventListener('close', () => {
      if (this.outbound.get(peer.toString()) !== undefined) this.outbound.delete(peer.toString());
    });
    return stream;
  }

  onFrame(handler: FrameHandler): void {
    this.frames.set(handler);
  }

  onLinkChange(handler: LinkHandler): void {
    this.linkHandlers.push(handler);
  }

  /**
   * Reads one neighbour's incoming frame stream until it ends (the frames protocol handler).
   * libp2p's async iterator buffers without bound and yamux keeps granting window, so we pause
   * the stream ourselves past a high-water mark: yamux then stops sending window updates and
   * the sender's send() stalls on onDrain().
   */
  async receive(from: AgentId, stream: Stream): Promise<void> {
    stream.inactivityTimeout = 0;
    const decoder = new FrameDecoder(MAX_FRAME_BYTES);
    const queue: Uint8Array[] = [];
    let queued = 0;
    let paused = false;
    let ended = false;
    let wake: (() => void) | undefined;
    const onMessage = (event: StreamMessageEvent): void => {
      try {
        for (const frame of decoder.push(event.data.subarray())) {
          queue.push(frame);
          queued += frame.length;
        }
      } catch (err) {
        this.log.warn({ err, from }, 'bad frame stream; resetting it');
        stream.abort(err as Error);
        ended = true;
      }
      if (!paused && queued > RECEIVE_HIGH_WATER && stream.status === 'open') {
        paused = true;
        stream.pause();
      }
      wake?.();
    };
    const onEnd = (): void => {
      ended = true;
      wake?.();
    };
    stream.addEventListener('message', onMessage);
    stream.addEventListener('close', onEnd);
    stream.addEventListener('remoteCloseWrite', onEnd);
    try {
      for (;;) {
        const frame = queue.shift();
        if (frame === undefined) {
          if (ended) break;
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        queued -= frame.length;
        this.lastActivity.set(from, Date.now());
        try {
          await this.frames.deliver(from, frame);
        } catch (err) {
          this.log.error({ err, from }, 'frame handler failed');
        }
        if (paused && queued < RECEIVE_LOW_WATER && stream.status === 'open') {
          paused = false;
          stream.resume();
        }
      }
    } finally {
      stream.removeEventListener('message', onMessage);
      stream.removeEventListener('close', onEnd);
      stream.removeEventListener('remoteCloseWrite', onEnd);
    }
  }

  /** Called by the link manager when a neighbour's link is verified or lost. */
  setLink(peer: AgentId, up: boolean): void {
    if (up === this.up.has(peer)) return;
    if (up) {
      this.up.add(peer);
      this.lastActivity.set(peer, Date.now());
    } else {
      this.up.delete(peer);
      this.outbound.delete(peer);
      this.lastActivity.delete(peer);
    }
    for (const handler of this.linkHandlers) {
      try {
        handler(peer, up);
      } catch (err) {
        this.log.error({ err, peer }, 'link change handler failed');
      }
    }
  }
}

/**
 * The open connection to use for a new stream: a direct one (TCP, WebRTC) before one through a
 * relay, and the newest first. Right after a WebRTC upgrade both are open for a moment and the
 * relayed one is about to be closed by the other side; after our NAT changed its public address
 * the old connection still looks open here while its mapping is dead. A stream opened on either
 * would lose what it carries.
 */
export function preferDirect(connections: readonly Connection[]): Connection | undefined {
  const viaRelay = (c: Connection): boolean => {
    const names = c.remoteAddr.getComponents().map((x) => x.name);
    return names.includes('p2p-circuit') && !names.includes('webrtc');
  };
  const open = connections
    .filter((c) => c.status === 'open')
    .sort((a, b) => (b.timeline?.open ?? 0) - (a.timeline?.open ?? 0));
  return open.find((c) => !viaRelay(c)) ?? open[0];
}

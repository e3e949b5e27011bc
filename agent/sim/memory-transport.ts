import { KithError } from '../../common/errors.ts';
import type { AgentId } from '../../common/ids.ts';
import { MAX_FRAME_BYTES, type Transport } from '../transport.ts';

type FrameHandler = (from: AgentId, frame: Uint8Array) => void | Promise<void>;
type LinkHandler = (peer: AgentId, up: boolean) => void;

interface Queue {
  frames: Uint8Array[];
  running: boolean;
  drained: (() => void)[];
}

/** Frames queued per link before send() waits (backpressure, as a real stream). */
const HIGH_WATER = 16;
/** Frames a link hands its receiver in one macrotask at most. */
const READ_BATCH = 16;

/**
 * An in-memory network of agents: links are explicit (the trust graph), each direction of a link
 * is an ordered queue, handlers run one frame at a time per link, and an agent can go offline.
 * Counts frames by type so the simulator can measure protocol traffic.
 */
export class MemoryNetwork {
  private readonly nodes = new Map<AgentId, MemoryTransport>();
  private readonly links = new Map<AgentId, Set<AgentId>>();
  private readonly offline = new Set<AgentId>();
  private readonly queues = new Map<string, Queue>();
  private pending = 0;
  private idleWaiters: (() => void)[] = [];
  /** Frames delivered, by frame type (second byte). */
  readonly framesByType = new Map<number, number>();
  /** Bytes delivered. */
  bytes = 0;

  /** Adds an agent and returns its transport. */
  add(id: AgentId): MemoryTransport {
    const t = new MemoryTransport(this, id);
    this.nodes.set(id, t);
    this.links.set(id, new Set());
    return t;
  }

  /** Opens a link (both directions), as two agents that trust each other connecting. */
  link(a: AgentId, b: AgentId): void {
    this.links.get(a)?.add(b);
    this.links.get(b)?.add(a);
    if (this.connected(a, b)) this.notify(a, b, true);
  }

  /** Closes a link; queued frames on it are lost, as on a closed connection. */
  unlink(a: AgentId, b: AgentId): void {
    const was = this.connected(a, b);
    this.links.get(a)?.delete(b);
    this.links.get(b)?.delete(a);
    if (was) this.notify(a, b, false);
  }

  /** Takes an agent off the network (crash, laptop closed) or brings it back. */
  setOnline(id: AgentId, online: boolean): void {
    const peers = [...(this.links.get(id) ?? [])].filter((p) => !this.offline.has(p));
    if (online === !this.offline.has(id)) return;
    if (online) this.offline.delete(id);
    else this.offline.add(id);
    for (const p of peers) this.notify(id, p, online);
  }

  /** True if both ends are online and linked. */
  connected(a: AgentId, b: AgentId): boolean {
    return !this.offline.has(a) && !this.offline.has(b) && (this.links.get(a)?.has(b) ?? false);
  }

  neighbours(id: AgentId): AgentId[] {
    if (this.offline.has(id)) return [];
    return [...(this.links.get(id) ?? [])].filter((p) => !this.offline.has(p));
  }

  /** Resolves when no frame is queued or being handled anywhere. */
  idle(): Promise<void> {
    if (this.pending === 0) return new Promise((resolve) => setImmediate(resolve));
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Total frames delivered. */
  frames(): number {
    let n = 0;
    for (const v of this.framesByType.values()) n += v;
    return n;
  }

  private notify(a: AgentId, b: AgentId, up: boolean): void {
    if (!up) {
      for (const key of [`${a}>${b}`, `${b}>${a}`]) {
        const q = this.queues.get(key);
        if (q) {
          this.settle(q.frames.length);
          q.frames.length = 0;
          for (const d of q.drained.splice(0)) d();
        }
      }
    }
    this.nodes.get(a)?.linkChanged(b, up);
    this.nodes.get(b)?.linkChanged(a, up);
  }

  /** Queues a frame; resolves when the link can take more. */
  async enqueue(from: AgentId, to: AgentId, frame: Uint8Array): Promise<void> {
    if (frame.length > MAX_FRAME_BYTES)
      throw new KithError('ERR_FRAME_TOO_LARGE', 'frame larger than MAX_FRAME_BYTES');
    if (!this.connected(from, to)) throw new KithError('ERR_NO_LINK', `no link to ${to}`);
    const key = `${from}>${to}`;
    let q = this.queues.get(key);
    if (!q) {
      q = { frames: [], running: false, drained: [] };
      this.queues.set(key, q);
    }
    q.frames.push(frame);
    this.pending++;
    if (!q.running) void this.pump(from, to, q);
    if (q.frames.length > HIGH_WATER) await new Promise<void>((resolve) => q.drained.push(resolve));
  }

  private async pump(from: AgentId, to: AgentId, q: Queue): Promise<void> {
    q.running = true;
    // Frames come a batch per macrotask, as a socket read hands over what arrived together. The
    // yield bounds each batch: handlers that answer at once must never keep a ring of pumps busy
    // in microtasks for good, which would starve every timer (Jest's testTimeout too).
    for (let n = 0; ; n++) {
      if (n % READ_BATCH === 0) await new Promise((resolve) => setImmediate(resolve));
      if (q.frames.length === 0) break;
      const frame = q.frames.shift() as Uint8Array;
      if (q.frames.length <= HIGH_WATER) for (const d of q.drained.splice(0)) d();
      if (this.connected(from, to)) {
        this.framesByType.set(frame[1], (this.framesByType.get(frame[1]) ?? 0) + 1);
        this.bytes += frame.length;
        try {
          await this.nodes.get(to)?.deliver(from, frame);
        } catch {
          // A handler's failure is the receiver's problem, not the link's.
        }
      }
      this.settle(1);
    }
    q.running = false;
  }

  /** Counts work a handler left running as in flight until it settles (Transport.track). */
  track(work: Promise<unknown>): void {
    this.pending++;
    const done = (): void => this.settle(1);
    work.then(done, done);
  }

  private settle(n: number): void {
    this.pending -= n;
    if (this.pending === 0) for (const w of this.idleWaiters.splice(0)) setImmediate(w);
  }
}

/** One agent's view of the in-memory network. */
export class MemoryTransport implements Transport {
  private frameHandler?: FrameHandler;
  private readonly linkHandlers: LinkHandler[] = [];

  constructor(
    private readonly network: MemoryNetwork,
    readonly self: AgentId,
  ) {}

  neighbours(): AgentId[] {
    return this.network.neighbours(this.self);
  }

  send(to: AgentId, frame: Uint8Array): Promise<void> {
    return this.network.enqueue(this.self, to, frame);
  }

  onFrame(handler: FrameHandler): void {
    this.frameHandler = handler;
  }

  track(work: Promise<unknown>): void {
    this.network.track(work);
  }

  onLinkChange(handler: LinkHandler): void {
    this.linkHandlers.push(handler);
  }

  /** @internal */
  async deliver(from: AgentId, frame: Uint8Array): Promise<void> {
    await this.frameHandler?.(from, frame);
  }

  /** @internal */
  linkChanged(peer: AgentId, up: boolean): void {
    for (const h of this.linkHandlers) h(peer, up);
  }
}

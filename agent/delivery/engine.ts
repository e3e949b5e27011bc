import { mkdir } from 'node:fs/promises';
import { steadyClock } from '../../common/clock.ts';
import type { Logger } from '../../common/logger.ts';
import type { AgentId, MessageId } from '../../common/ids.ts';
import type { Transport } from '../transport.ts';
import { SignatureVerifier, type AgentKeys } from '../onion/keys.ts';
import { FrameType, WIRE_VERSION } from '../onion/wire.ts';
import type { PayloadCodec } from '../payload/codec.ts';
import { Discovery, type DiscoveryOptions } from '../routing/discovery.ts';
import type { TrustView } from '../routing/trust.ts';
import type { DeliveryEvent, DeliveryOptions, DeliverySink, EngineContext, TransitEvent } from './context.ts';
import { encodeComplaint } from './frames.ts';
import { Metrics } from './metrics.ts';
import { Receiver } from './receiver.ts';
import { Relay } from './relay.ts';
import { Sender, type OutboundPayload } from './sender.ts';
import { sealSharedBody, type SharedBody } from './outbox-record.ts';
import type { DeliveryStore, HeldRef } from './store.ts';
import type { SpamHooks } from '../spam/control.ts';

export type {
  DeliveryEvent,
  DeliveryOptions,
  DeliverySink,
  InboundDelivery,
  InboundTransfer,
  TransferEnd,
  TransitEvent,
} from './context.ts';
export type { HeldRef } from './store.ts';
export type { OutboundPayload } from './sender.ts';
export type { SharedBody } from './outbox-record.ts';

export interface DeliveryEngineDeps {
  transport: Transport;
  keys: AgentKeys;
  trust: TrustView;
  store: DeliveryStore;
  codec: PayloadCodec;
  sink: DeliverySink;
  logger: Logger;
  delivery: DeliveryOptions;
  discovery: DiscoveryOptions;
  /** Called once when complaints against a neighbour reach the threshold (revoke its trust there). */
  onComplaintThreshold?: (neighbour: AgentId, count: number) => void;
  /** Spam control (agent/spam/control.ts): signed complaints (frames 6-8), traffic, suspensions. */
  spam?: SpamHooks;
  /** Dials a trusted neighbour without an open link (EngineContext.connect). */
  connect?: (agent: AgentId) => Promise<void>;
  /** Protocol time (default: a steady clock that ignores steps of the system clock, common/clock.ts). */
  now?: () => number;
}

const PRUNE_EVERY_MS = 60_000;

/** A sealed message not stored yet (DeliveryEngine.prepare). */
export interface PreparedSend {
  /** Stores the message (synchronous; in the caller's transaction). */
  write(): void;
  /** Starts delivering it: only after the write committed. */
  start(): void;
}

/**
 * The protocol core of one agent, over a Transport: discovery, sending, relaying, receiving,
 * reports and complaints. The node wires it (BullMQ job progress from events, SQLite store);
 * the simulator runs thousands of them over an in-memory transport.
 */
export class DeliveryEngine {
  readonly metrics = new Metrics();
  readonly discovery: Discovery;
  private readonly relay: Relay;
  private readonly sender: Sender;
  private readonly receiver: Receiver;
  private readonly listeners = new Set<(event: DeliveryEvent) => void>();
  private pruneTimer?: NodeJS.Timeout;
  private started = false;
  private readonly now: () => number;

  constructor(private readonly deps: DeliveryEngineDeps) {
    const now =
      deps.now ??
      steadyClock({
        onStep: (stepMs) => {
          this.metrics.count('clock_steps');
          deps.logger.warn({ stepMs }, 'the system clock stepped: protocol time keeps its own course');
        },
      });
    this.now = now;
    const verifier = new SignatureVerifier();
    const ctx: EngineContext = {
      transport: deps.transport,
      keys: deps.keys,
      trust: deps.trust,
      store: deps.store,
      verifier,
      count: this.metrics.count,
      logger: deps.logger,
      now,
      options: deps.delivery,
      spam: deps.spam,
      connect: deps.connect,
      emit: (event) => {
        for (const listener of this.listeners) listener(event);
      },
    };
    this.discovery = new Discovery({
      transport: deps.transport,
      keys: deps.keys,
      trust: deps.trust,
      verifier,
      count: this.metrics.count,
      logger: deps.logger,
      now,
      options: deps.discovery,
    });
    this.sender = new Sender(ctx, deps.codec, this.discovery);
    // The receiver reports through the relay, which is built after it.
    this.receiver = new Receiver(ctx, deps.codec, deps.sink, (...args) => this.relay.report(...args));
    this.relay = new Relay(ctx, this.sender, this.receiver, deps.onComplaintThreshold ?? (() => undefined));
    deps.spam?.bind({
      hopByOut: (link) => deps.store.hopByOut(link),
      ownComplaint: (link) => {
        if (!this.sender.owns(link)) return false;
        this.sender.onComplaint(link);
        return true;
      },
      count: this.metrics.count,
    });
  }

  /** Registers for delivery events (progress per hop, stalled, delivered, failed). */
  onEvent(listener: (event: DeliveryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts handling frames and resumes every pending outbound message of the store. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { transport, store } = this.deps;
    if (this.deps.delivery.spoolDir)
      await mkdir(this.deps.delivery.spoolDir, { recursive: true, mode: 0o700 });
    transport.onFrame((from, frame) => this.onFrame(from, frame));
    transport.onLinkChange((peer, up) => {
      if (!up || !this.started) return;
      this.flushHeld(peer);
      this.sender.linkUp();
    });
    this.pruneTimer = setInterval(() => {
      store.pruneHops(this.now());
      this.relay.pruneHeld(this.now());
    }, PRUNE_EVERY_MS);
    this.pruneTimer.unref();
    for (const rec of store.pendingOutbox()) void this.sender.resume(rec.id);
    await this.receiver.start();
    // Links that came up before we listened: hand on what was held for them before a restart.
    for (const peer of transport.neighbours()) this.flushHeld(peer);
  }

  private flushHeld(peer: AgentId): void {
    this.relay.linkUp(peer).catch((err: Error) => {
      this.metrics.count('internal_error');
      this.deps.logger.warn({ peer, err: err.message }, 'handing on held packets failed');
    });
  }

  /** Stops timers and outstanding deliveries (their state stays in the store for resume). */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    clearInterval(this.pruneTimer);
    this.discovery.stop();
    this.receiver.stop();
    await this.sender.stop();
  }

  /** Stores and starts delivering a message; resolves once it is durable in the outbox. */
  send(payload: OutboundPayload): Promise<void> {
    return this.sender.send(payload);
  }

  /**
   * send() in two steps, for a caller that commits the message with rows of its own (the SMTP
   * gateway's group commit): the sealing now, then write() — synchronous, inside the caller's
   * transaction on this store's database — and start() once that transaction committed.
   */
  async prepare(payload: OutboundPayload): Promise<PreparedSend> {
    const rec = await this.sender.prepare(payload);
    return {
      write: () => this.deps.store.putOutbox(rec),
      start: () => void this.sender.resume(rec.id),
    };
  }

  /** True while a message we sent is still being delivered (stored and not finished). */
  isPending(id: MessageId): boolean {
    return this.deps.store.getOutbox(id)?.state === 'pending';
  }

  /** How delivery of a message we sent ended, as stored (undefined: still pending, or not ours). */
  outcomeOf(id: MessageId): 'delivered' | 'failed' | undefined {
    const state = this.deps.store.getOutbox(id)?.state;
    return state === 'pending' ? undefined : state;
  }

  /**
   * Wrap-once for a list post (docs/protocol.md 7.8, manifest version 2): signs and encrypts the
   * payload at `rawPath` once into `bodyPath`; send() with `shared` then seals each copy as a
   * PKESK head for its recipient only. ERR_WRAP_ONCE_UNAVAILABLE when it does not apply.
   */
  shareBody(rawPath: string, bodyPath: string): Promise<SharedBody> {
    return sealSharedBody({ trust: this.deps.trust }, this.deps.codec, rawPath, bodyPath);
  }

  /** (Re)starts delivery of a stored pending message (after a restart, or a lost queue job). */
  resume(id: MessageId): Promise<void> {
    return this.sender.resume(id);
  }

  /** Sends a complaint about a received message back along its path; false if its path is forgotten. */
  complain(id: MessageId): boolean {
    const link = this.receiver.linkOf(id);
    if (!link) return false;
    this.deps.transport
      .send(link.from, encodeComplaint(link.inId))
      .catch(() => this.metrics.count('complaint_send_failed'));
    return true;
  }

  /** Complaints counted against a neighbour at this agent. */
  complaintsAgainst(neighbour: AgentId): number {
    return this.relay.complaints.count(neighbour);
  }

  /** Bytes this agent holds for unreachable next hops. */
  heldBytes(): number {
    return this.relay.heldSize();
  }

  /** Hears when a packet is held for an unreachable next hop and when it is released. */
  onTransit(listener: (event: TransitEvent) => void): () => void {
    return this.relay.onTransit(listener);
  }

  /** Packets held now, in arrival order (seq > afterSeq, at most limit): the transit queue's truth. */
  heldIndex(afterSeq = 0, limit = 1000): HeldRef[] {
    return this.deps.store.heldIndex(afterSeq, limit);
  }

  /** True while a held packet waits (not handed on, expired or pruned). */
  isHeld(seq: number): boolean {
    return this.deps.store.hasHeld(seq);
  }

  /** Tries to hand on what is held for `next` now (after a dial); resolves when the pass ends. */
  retryHeld(next: AgentId): Promise<void> {
    return this.relay.linkUp(next);
  }

  private async onFrame(from: AgentId, frame: Uint8Array): Promise<void> {
    if (!this.started) return;
    const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
    if (buf.length < 2 || buf[0] !== WIRE_VERSION) return this.metrics.count('rejected_frame_version');
    try {
      switch (buf[1]) {
        case FrameType.onion:
          return await this.relay.onOnion(from, buf);
        case FrameType.report:
          return await this.relay.onReport(from, buf);
        case FrameType.complaint:
          return await this.relay.onComplaint(from, buf);
        case FrameType.discoverRequest:
        case FrameType.discoverResponse:
          return await this.discovery.handle(from, buf);
        case FrameType.signedComplaint:
        case FrameType.cut:
        case FrameType.spamRevocation:
          if (!this.deps.spam) return this.metrics.count('rejected_frame_type');
          return await this.deps.spam.onFrame(from, buf);
        default:
          return this.metrics.count('rejected_frame_type');
      }
    } catch (err) {
      // Nothing a neighbour sends may crash the agent; an unexpected error is a bug, logged and counted.
      this.metrics.count('internal_error');
      this.deps.logger.error({ from, err: (err as Error).message }, 'frame handling failed');
    }
  }
}

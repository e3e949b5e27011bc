import type { Logger } from '../../common/logger.ts';
import type { AgentId, Fingerprint, MessageId } from '../../common/ids.ts';
import type { Transport } from '../transport.ts';
import type { AgentKeys, SignatureVerifier } from '../onion/keys.ts';
import type { TrustView } from '../routing/trust.ts';
import type { Count } from '../onion/wire.ts';
import type { DeliveryStore, HeldRef } from './store.ts';
import type { SpamHooks } from '../spam/control.ts';
import type { Rider } from '../../store/group-commit.ts';

export interface DeliveryOptions {
  /** No progress report for this long: re-send along another path. */
  stallTimeoutMs: number;
  /** Give up after this long (also the lifetime of every packet). */
  maxAgeMs: number;
  /** How long a hop remembers who handed it a packet. */
  hopMemoryMs: number;
  /**
   * The longest this agent keeps anything for a packet of someone else's: packets expiring later
   * than now + maxHoldMs (plus a clock-skew allowance) are refused, so held packets and hop memory
   * stay bounded in time. As a sender, no packet it makes expires later than this.
   */
  maxHoldMs: number;
  /** Bytes this agent holds at most for unreachable next hops. */
  maxHeldBytes: number;
  /** Complaints against one neighbour before onComplaintThreshold is called. */
  complaintThreshold: number;
  /** Largest inbound payload accepted (default 4 GiB plus 33 MiB of framing, receiver.ts MAX_INBOUND_DEFAULT). */
  maxInboundBytes?: number;
  /** Chunks in flight beyond the last acknowledged one (default: 1 MiB of chunks, decide.ts chunksInFlight). */
  window?: number;
  /** Directory where inbound chunked payloads are assembled (required to receive large payloads). */
  spoolDir?: string;
  /**
   * A transfer being assembled that stores no chunk for this long is ended as expired: spool
   * deleted, link "Gone" (default a week, receiver.ts INBOUND_IDLE_DEFAULT).
   */
  inboundIdleMs?: number;
}

/** A message handed to the sink: signature checked, exactly once per message id. */
export interface InboundDelivery {
  id: MessageId;
  sender: Fingerprint;
  /** True only if the sender entity's signature verified. */
  verified: boolean;
  size: number;
  receivedAt: Date;
  /** Small payloads: the bytes. */
  data?: Buffer;
  /** Small payloads: the sealed manifest as it arrived (siblings get these bytes, docs/protocol.md 16.3). */
  sealed?: Buffer;
  /** Large payloads: the assembled file; deleted after receive() resolves unless the sink moved it. */
  file?: string;
  /**
   * The delivered mark, for the sink to commit with the message's mailbox rows (take() it into
   * that transaction); when the sink does not take it, the receiver commits it after receive().
   */
  delivered?: Rider;
}

/** Where delivered messages go (the mailbox, through the lead's GatewaySink adapter). */
export interface DeliverySink {
  /** Durable when it resolves: only then is "delivered" reported to the sender. */
  receive(message: InboundDelivery): Promise<void>;
  /**
   * A chunked payload started (or resumed, after a restart) arriving: its manifest is open and
   * signed by `sender`. `has(i)` says whether chunk i is stored (authenticated) in `spool`. For
   * serving a transfer while it arrives (agent/streams); optional.
   */
  onTransfer?(transfer: InboundTransfer): void;
  /** Chunk `index` of a transfer was authenticated and stored in its spool file. */
  onChunk?(id: MessageId, index: number): void;
  /**
   * A transfer will never complete: its sender's authenticated cancel, or no chunk stored for
   * `inboundIdleMs`. Its spool is already gone; `reason` is the sender's text or the expiry's.
   */
  onTransferEnded?(id: MessageId, end: TransferEnd): void;
}

/** How an incomplete transfer ended (DeliverySink.onTransferEnded). */
export interface TransferEnd {
  how: 'cancelled' | 'expired';
  reason: string;
}

/** A chunked inbound payload being assembled, as DeliverySink.onTransfer sees it. */
export interface InboundTransfer {
  id: MessageId;
  sender: Fingerprint;
  verified: boolean;
  /** Payload bytes (from the signed manifest). */
  size: number;
  chunkSize: number;
  chunks: number;
  /** The spool file: chunk i's plaintext at i * chunkSize once has(i). */
  spool: string;
  /** True once chunk i is stored (live view of the assembly's bitmap). */
  has(index: number): boolean;
}

/** What happens to an outbound message, for the queue job's progress and status emails. */
export type DeliveryEvent =
  | { kind: 'progress'; id: MessageId; at: number; hop: number; hops: number; agent: AgentId }
  | { kind: 'held'; id: MessageId; at: number; hop: number; agent: AgentId }
  | { kind: 'chunks'; id: MessageId; at: number; acked: number; total: number }
  | {
      kind: 'stalled';
      id: MessageId;
      at: number;
      lastHop: number;
      action: 'alternate path' | 'waiting for a path';
      /** Why, when a hop said so (a relay's refusal under a spam limit: refusalText). */
      reason?: string;
    }
  | { kind: 'delivered'; id: MessageId; at: number }
  | { kind: 'failed'; id: MessageId; at: number; reason: string }
  /** `link`: the packet complained about (a list carries the complaint on with it, agent/lists). */
  | { kind: 'complained'; id: MessageId; at: number; link?: string };

/**
 * What the relay tells a transit queue (agent/queue/transit.ts) about packets it holds for others:
 * the hook that lets a BullMQ job per held packet exist without the core importing BullMQ.
 */
export type TransitEvent =
  { kind: 'held'; packet: HeldRef } | { kind: 'released'; seq: number; why: 'handed on' | 'expired' };

/** The parts every piece of the engine shares. */
export interface EngineContext {
  transport: Transport;
  keys: AgentKeys;
  trust: TrustView;
  store: DeliveryStore;
  verifier: SignatureVerifier;
  count: Count;
  logger: Logger;
  now: () => number;
  options: DeliveryOptions;
  emit: (event: DeliveryEvent) => void;
  /** Spam control (agent/spam): signed complaints, traffic counts, suspended neighbours. */
  spam?: SpamHooks;
  /**
   * Opens a link to a trusted neighbour that has none now (the link layer's connect; rejects when
   * it cannot). Without it the sender waits for links to come up by themselves.
   */
  connect?: (agent: AgentId) => Promise<void>;
}

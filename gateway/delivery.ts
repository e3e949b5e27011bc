import type { Fingerprint, MessageId } from '../common/ids.ts';
import type { Rider } from '../store/group-commit.ts';

/**
 * The boundary between the gateway (SMTP, IMAP, status emails) and the agent. The gateway
 * never touches libp2p, Redis or the routing tables; it calls these.
 */

/** Where a recipient address leads, decided before RCPT TO is answered. */
export type RecipientResolution =
  | { ok: true; fingerprint: Fingerprint; email?: string }
  | {
      ok: false;
      /**
       * unknown: nobody by that address; ambiguous: several keys claim it; unreachable: not in the
       * web of trust; no-path-yet: nobody answered for it now (temporary: try again later).
       */
      reason: 'unknown' | 'ambiguous' | 'unreachable' | 'no-path-yet';
      /** A sentence for the user that says what to do. */
      message: string;
    };

export interface OutboundMessage {
  /** Kith message id the gateway chose (also stored with the submission). */
  id: MessageId;
  from: Fingerprint;
  to: Fingerprint;
  /** The RFC 5322 message, byte for byte, as a file that stays until delivery ends. */
  rawPath: string;
  size: number;
}

/**
 * A copy the agent has sealed but not stored (DeliveryService.prepare): the gateway commits it
 * together with its own record of the submission, in one transaction.
 */
export interface PreparedCopy {
  /** The agent's rows for this copy: synchronous, on the gateway's database, inside its transaction. */
  write(): void;
  /** Starts delivering the copy; called only after that transaction committed. */
  start(): void;
}

/** What the SMTP side hands to the agent. */
export interface DeliveryService {
  resolveRecipient(address: string): Promise<RecipientResolution>;
  /** Durable when it resolves: the outbox row is committed and the queue job exists or will be re-created. */
  submit(message: OutboundMessage): Promise<void>;
  /**
   * submit() in two steps, so that the gateway commits the copy with its own rows (one commit,
   * shared with the other submissions waiting at that moment): everything before the store
   * (sealing) now, nothing durable yet. Throws as submit() would.
   */
  prepare(message: OutboundMessage): Promise<PreparedCopy>;
}

/** What became of an outbound message, as the agent learns it from progress reports. */
export type DeliveryEvent =
  | { kind: 'progress'; id: MessageId; to: Fingerprint; at: Date; hop: number; hopAgent?: string }
  | { kind: 'delivered'; id: MessageId; to: Fingerprint; at: Date }
  | {
      kind: 'delayed';
      id: MessageId;
      to: Fingerprint;
      at: Date;
      /** Agents on the path the message reached (0: it has not left the sender's agent), when known. */
      hop?: number;
      /** Id of the last agent that had the message, when a report named it. */
      lastHop?: string;
      /** What Kith is doing about it, as a sentence for the sender. */
      action: string;
    }
  | {
      kind: 'failed';
      id: MessageId;
      to: Fingerprint;
      at: Date;
      reason: string;
      /** Why, for the status code of the status email: no path found, expired, or refused by the recipient's agent. */
      cause?: 'no-path' | 'expired' | 'refused';
    };

/** A message that arrived from the network for this node's entity, signature already checked. */
export interface InboundMessage {
  id: MessageId;
  /** The RFC 5322 message as the sender submitted it. */
  raw: Buffer;
  sender: { fingerprint: Fingerprint; email?: string; name?: string };
  /** True only if the OpenPGP signature verified against the sender entity's key. */
  verified: boolean;
  /**
   * False when this node does not hold the key the sender claims (first contact): the signature
   * could not be checked at all, which is not the same as a signature that failed.
   */
  senderKeyKnown?: boolean;
  receivedAt: Date;
  /** The agent's delivered mark, to commit in the same transaction as the mailbox rows. */
  delivered?: Rider;
}

/** What the agent hands to the gateway: incoming mail and delivery status. */
export interface GatewaySink {
  /** Durable in the mailbox when it resolves (the agent reports "delivered" only then). */
  receive(message: InboundMessage): Promise<void>;
  /**
   * Turns a status change into a status email when the user asked for one. `final`: the agent's
   * "final status reported" mark, which the gateway may take into the commit of the email and the
   * copy's state (the agent commits it itself when not taken).
   */
  status(event: DeliveryEvent, final?: Rider): Promise<void>;
}

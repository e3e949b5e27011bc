import type { Multiaddr } from '@multiformats/multiaddr';
import type { Config } from '../../config/schema.ts';
import type { AgentId, Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { Identity } from '../identity/identity.ts';
import type { Transport } from '../transport.ts';
import type { ProvisionalLimits } from '../trust/decisions.ts';
import type { EntityRecord, TrustSource, TrustStore } from '../trust/store.ts';
import type { NodeExtras } from './node.ts';

/** What createLinks needs. */
export interface LinksOptions {
  identity: Identity;
  trust: TrustStore;
  config: Config['p2p'];
  log: Logger;
  /** Transports, services and addresses the NAT layer adds (agent/nat/natExtras). */
  extras?: NodeExtras;
  /** How long an unknown peer may stay connected before its hello proves it (default 10 s). */
  provisionalMs?: number;
  /** Bounds on unknown peers let in at once and per address (agent/trust/decisions.ts). */
  provisionalLimits?: ProvisionalLimits;
  /** Time for certificate renewal (tests move it; give the trust store the same one). */
  clock?: () => number;
}

/** Where links look up and report agents' addresses (agent/reachability implements it). */
export interface AddressBook {
  /** Last known good addresses of an agent, best first. */
  addressesOf(agent: AgentId): string[];
  /** Addresses a failed dial set aside, longest-failed first: tried when no other answers. */
  setAsideOf?(agent: AgentId): string[];
  /** A dial to this address reached the agent. */
  markWorked(agent: AgentId, address: string): void;
  /** A dial to this address failed (no answer, or another key answered). */
  markFailed(agent: AgentId, address: string): void;
}

/** One contact as `kith contacts` shows it. */
export interface ContactView {
  fingerprint: Fingerprint;
  name: string;
  email: string;
  trusted: boolean;
  contact: boolean;
  revoked: boolean;
  source: TrustSource;
  agents: {
    agentId: AgentId;
    revoked: boolean;
    /** Certificate expiry, ISO 8601. */
    notAfter: string;
    linked: boolean;
    addresses: string[];
  }[];
  /** Addresses given with `kith trust --address`. */
  addressHints: string[];
}

/** What `kith trust` did: the entity now trusted, and whether one of the addresses answered. */
export interface TrustResult {
  entity: EntityRecord;
  /** The agent of that entity we linked with, and at which address. */
  linked?: { agent: AgentId; address: string };
  /** Addresses that did not answer, or answered with an agent of another entity (retried later). */
  unreachable: { address: string; error: string }[];
}

/** The link layer as the node and the control channel (CLI) use it. */
export interface Links {
  /** This agent's peer id. */
  readonly self: AgentId;
  /** Frames to and from linked neighbours, for the protocol core. */
  readonly transport: Transport;
  /** Starts libp2p and listens; our own entity becomes trusted so our other agents can link. */
  start(): Promise<void>;
  /** Closes every link and stops libp2p (bounded wait). */
  stop(): Promise<void>;
  /** Addresses we listen on or announce, with /p2p/ suffix. */
  multiaddrs(): Multiaddr[];
  /** Dials an address and runs the hello exchange; resolves with the linked agent. */
  dial(address: string | Multiaddr): Promise<AgentId>;
  /** Links with a known agent using the address book. */
  connect(agent: AgentId): Promise<void>;
  /** Is there a verified link to this agent right now? */
  isLinked(agent: AgentId): boolean;
  /** `kith invite`: a one-time code valid for ttlMs. */
  createInvitation(options: { ttlMs: number }): string;
  /** `kith accept CODE`: resolves with the inviter, now a trusted contact. */
  acceptInvitation(code: string): Promise<EntityRecord>;
  /** Called on the inviter's side when someone redeemed one of its invitations. */
  onInvitationRedeemed(listener: (entity: EntityRecord) => void): void;
  /** `kith trust FINGERPRINT --address ...`: trusts, and dials the addresses until one links. */
  trust(fingerprint: string, options?: { addresses?: string[] }): Promise<TrustResult>;
  /** Dials the addresses given to `trust` for this entity; resolves with the agent linked, if any. */
  dialHints(entity: Fingerprint): Promise<AgentId | undefined>;
  /** `kith revoke FINGERPRINT`: closes its links at once and refuses them from now on. */
  revoke(fingerprint: string): EntityRecord;
  /** `kith contacts`. */
  contacts(): ContactView[];
  /** Installs the address book used by connect() and contacts(). */
  setAddressBook(book: AddressBook): void;
  /** Re-sends our hello (entity key, certificates, revocations) to every neighbour. */
  pushHello(): Promise<void>;
}

import type { AgentId, Fingerprint } from '../../common/ids.ts';

/** An agent certified by an entity, as the trust store knows it. */
export interface CertifiedAgent {
  /** The agent (its id is its Ed25519 key). */
  agent: AgentId;
  /** The entity whose key certified it. */
  entity: Fingerprint;
  /** Raw X25519 onion key named in the certificate. */
  onionKey: Buffer;
  /** The certificate as it travels (real nodes: canonical text, "\n", armored signature); opaque here. */
  certificate: Uint8Array;
}

/**
 * Everything the protocol core asks about trust. agent/trust implements it over the trust store
 * (OpenPGP certificates, revocations); the simulator implements it in memory.
 */
export interface TrustView {
  /** This node's own entity. */
  readonly self: Fingerprint;
  /**
   * Certified agents of an entity that this agent will relay to directly: its own agents when the
   * entity is ours, else trusted neighbours certified by that entity. Empty if we do not trust it.
   */
  relayTargets(entity: Fingerprint): CertifiedAgent[];
  /** This agent's own certificate (goes into path entries it signs). */
  ownCertificate(): Uint8Array;
  /**
   * Checks that `certificate` is the entity's valid certification of that agent and onion key.
   * true: verified; false: forged or expired; undefined: cannot tell (we do not hold the entity key).
   */
  verifyCertificate(
    entity: Fingerprint,
    agent: AgentId,
    onionKey: Buffer,
    certificate: Uint8Array,
  ): Promise<boolean | undefined>;
  /** True if this agent's trust or certificate has been revoked: never route through it. */
  isRevoked(agent: AgentId): boolean;
  /**
   * Key discovery (docs/protocol.md, "Discovery"). Optional: an implementation without it (the
   * simulator) neither asks for nor hands out entity keys. True if we hold the entity's key.
   */
  hasEntityKey?(entity: Fingerprint): boolean;
  /** The entity's public key as it travels in a discovery answer (binary OpenPGP); undefined if not held. */
  entityKey?(entity: Fingerprint): Promise<Uint8Array | undefined>;
  /**
   * Checks that `key` is the key whose fingerprint is `entity` and keeps it as a known entity
   * (neither trusted nor a contact). Throws a KithError when it is not that entity's usable key.
   */
  learnEntityKey?(entity: Fingerprint, key: Uint8Array): Promise<void>;
}

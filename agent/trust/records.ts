import * as openpgp from 'openpgp';
import { KithError } from '../../common/errors.ts';
import { asFingerprint, type AgentId, type Fingerprint } from '../../common/ids.ts';

// What the trust store hands out (records, changes), the rows it keeps them in, and the parsing
// of what it is given (fingerprints, keys, signed statements), each failing with its own error.

/** How an entity came to be known. */
export type TrustSource = 'invitation' | 'fingerprint' | 'wrote-first' | 'self' | 'discovery';

/** One entity as the trust store knows it. */
export interface EntityRecord {
  fingerprint: Fingerprint;
  /** Armored public key; undefined while trusted by fingerprint and not fetched yet. */
  publicKey?: string;
  name: string;
  email: string;
  /** We link with its agents and forward for them. */
  trusted: boolean;
  /** Its key <-> address binding is verified: mail to its address goes to this key. */
  contact: boolean;
  source: TrustSource;
  addedAt: number;
  revokedAt?: number;
}

/** One certified agent of a known entity. */
export interface AgentRecord {
  agentId: AgentId;
  entity: Fingerprint;
  /** X25519 onion public key, 32 raw bytes. */
  onionKey: Buffer;
  notBefore: number;
  notAfter: number;
  certificate: { canonical: string; signature: string };
  revoked: boolean;
}

/** What changed, so links can close at once and caches can drop. */
export type TrustChange =
  | { kind: 'entity-trusted'; fingerprint: Fingerprint }
  | { kind: 'entity-revoked'; fingerprint: Fingerprint; agents: AgentId[] }
  | { kind: 'agent-added'; fingerprint: Fingerprint; agent: AgentId }
  | { kind: 'agent-revoked'; fingerprint: Fingerprint; agent: AgentId };

/** A row of trust_entity. */
export type EntityRow = {
  fingerprint: string;
  public_key: string | null;
  name: string;
  email: string;
  trusted: number;
  contact: number;
  source: TrustSource;
  added_at: number;
  revoked_at: number | null;
};
/** A row of trust_agent. */
export type AgentRow = {
  peer_id: string;
  entity: string;
  onion_key: string;
  not_before: number;
  not_after: number;
  cert_canonical: string;
  cert_signature: string;
};

/** A fingerprint the user typed, or ERR_BAD_FINGERPRINT. */
export function asFingerprintOrThrow(text: string): Fingerprint {
  try {
    return asFingerprint(text);
  } catch {
    throw new KithError(
      'ERR_BAD_FINGERPRINT',
      `not an entity fingerprint: ${text}`,
      'give the 40 hex digits shown by `kith id` on the other side',
    );
  }
}

/** The agent a signed statement (certificate, revocation) names, if it parses. */
export function parseCertAgent(canonical: string): string | undefined {
  try {
    const agent = (JSON.parse(canonical) as { agent?: unknown }).agent;
    return typeof agent === 'string' ? agent : undefined;
  } catch {
    return undefined;
  }
}

/** The entity a signed statement names, or ERR_CERT_MALFORMED. */
export function parseCertEntity(canonical: string): Fingerprint {
  try {
    return asFingerprint((JSON.parse(canonical) as { entity: string }).entity);
  } catch {
    throw new KithError('ERR_CERT_MALFORMED', 'malformed signed statement: no entity fingerprint');
  }
}

/** An armored OpenPGP key as a public key (a private one's public half), or ERR_BAD_KEY. */
export async function readPublicKey(armored: string): Promise<openpgp.PublicKey> {
  try {
    const key = await openpgp.readKey({ armoredKey: armored });
    return key.isPrivate() ? key.toPublic() : key;
  } catch (err) {
    throw new KithError('ERR_BAD_KEY', `not an OpenPGP public key: ${(err as Error).message}`);
  }
}

export function toEntity(row: EntityRow): EntityRecord {
  return {
    fingerprint: asFingerprint(row.fingerprint),
    publicKey: row.public_key ?? undefined,
    name: row.name,
    email: row.email,
    trusted: row.trusted === 1 && row.revoked_at === null,
    contact: row.contact === 1,
    source: row.source,
    addedAt: row.added_at,
    revokedAt: row.revoked_at ?? undefined,
  };
}

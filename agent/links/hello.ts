import { KithError } from '../../common/errors.ts';
import { asFingerprint, type AgentId, type Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { Identity } from '../identity/identity.ts';
import type { EntityRecord, TrustStore } from '../trust/store.ts';

export const HELLO_PROTOCOL = '/kith/hello/1';

/** Revocations read from one hello at most (each costs a signature check). */
const MAX_REVOCATIONS = 256;

/** A signed statement as it travels: canonical text and its armored detached signature. */
export interface SignedText {
  canonical: string;
  signature: string;
}

/**
 * The certificate exchange right after connecting (docs/protocol.md, "Hello"). Each side shows
 * its entity key, its own agent certificate, its entity's other certified agents and every agent
 * revocation it holds for an entity it trusts, so new devices become known to every neighbour and
 * lost ones to every agent that trusts their entity.
 */
export interface HelloMessage {
  v: 1;
  entityKey: string;
  certificate: SignedText;
  siblings: SignedText[];
  revocations: SignedText[];
}

/** The responder's answer: its own hello, or why it refused. */
export type HelloReply = HelloMessage | { v: 1; refused: string };

/** This agent's hello, built fresh each time (siblings and revocations change). */
export function buildHello(identity: Identity, trust: TrustStore): HelloMessage {
  return {
    v: 1,
    entityKey: identity.entityPublicArmored,
    certificate: { canonical: identity.certificate.canonical, signature: identity.certificate.signature },
    siblings: trust
      .agentsOf(identity.fingerprint)
      .filter((a) => a.agentId !== identity.agentId && !a.revoked)
      .map((a) => a.certificate),
    revocations: trust.heldRevocations(),
  };
}

/**
 * Checks a peer's hello and learns from it. The peer id was proven by Noise; the certificate must
 * name exactly that peer and come from an entity we trust (by invitation or by fingerprint, in
 * which case the key shown must have that fingerprint). Revocations are applied before the
 * certificate, so a revoked agent cannot talk its way back in. Throws ERR_NOT_TRUSTED et al.
 */
export async function acceptHello(
  trust: TrustStore,
  remote: AgentId,
  hello: HelloMessage,
  log: Logger,
): Promise<EntityRecord> {
  if (
    hello?.v !== 1 ||
    typeof hello.entityKey !== 'string' ||
    typeof hello.certificate?.canonical !== 'string' ||
    !isListOrAbsent(hello.siblings) ||
    !isListOrAbsent(hello.revocations)
  ) {
    throw new KithError('ERR_PROTOCOL', 'malformed hello');
  }
  const { entity, agent } = certificateNames(hello.certificate.canonical);
  if (agent !== remote) {
    throw new KithError('ERR_CERT_WRONG_AGENT', `the certificate shown by ${remote} names agent ${agent}`);
  }
  const known = trust.entity(entity);
  if (known === undefined || !known.trusted) {
    throw new KithError('ERR_NOT_TRUSTED', `entity ${entity} is not trusted here`);
  }
  if (known.publicKey === undefined) {
    await trust.addEntity(hello.entityKey, {
      trusted: true,
      contact: true,
      source: known.source,
      expect: entity,
    });
  }
  // The peer's own certificate first (one signature check): a stranger claiming a trusted entity
  // makes us check nothing more.
  await trust.checkAgentCertificate(hello.certificate);
  // Each revocation is verified against the key of the entity that signed it; one of an entity
  // we do not know cannot be checked and is skipped (it matters only to its neighbours).
  for (const revocation of (hello.revocations ?? []).slice(0, MAX_REVOCATIONS)) {
    try {
      await trust.addAgentRevocation(revocation);
    } catch (err) {
      if (err instanceof KithError && err.code === 'ERR_UNKNOWN_ENTITY') continue;
      log.warn({ err, remote }, 'ignored a bad agent revocation in a hello');
    }
  }
  await trust.addAgentCertificate(hello.certificate);
  for (const sibling of hello.siblings ?? []) {
    try {
      await trust.addAgentCertificate(sibling);
    } catch (err) {
      log.debug({ err, remote }, 'ignored a sibling certificate in a hello');
    }
  }
  if (!trust.isTrustedAgent(remote)) {
    throw new KithError('ERR_NOT_TRUSTED', `agent ${remote} is not trusted here`);
  }
  return trust.entity(entity)!;
}

/**
 * Why checked up front: a hello whose siblings or revocations are not lists (a number, an object)
 * used to get as far as storing its certificate and then throw a TypeError while iterating (found
 * by test/fuzz); it is malformed, and refused before anything is checked or stored.
 */
function isListOrAbsent(value: unknown): boolean {
  return value === undefined || Array.isArray(value);
}

/** Entity and agent named by a certificate, without checking it (that is the trust store's job). */
export function certificateNames(canonical: string): { entity: Fingerprint; agent: string } {
  try {
    const body = JSON.parse(canonical) as { entity: string; agent: string };
    return { entity: asFingerprint(body.entity), agent: String(body.agent) };
  } catch {
    throw new KithError('ERR_CERT_MALFORMED', 'malformed agent certificate');
  }
}

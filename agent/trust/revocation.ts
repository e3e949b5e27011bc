import type * as openpgp from 'openpgp';
import { KithError } from '../../common/errors.ts';
import { asAgentId, asFingerprint, type AgentId, type Fingerprint } from '../../common/ids.ts';
import { signDetached, verifyDetached } from '../identity/certificate.ts';

/** An entity's signed statement that one of its agent certificates is void (a lost laptop). */
export interface AgentRevocation {
  entity: Fingerprint;
  agent: AgentId;
  /** ISO 8601 UTC. */
  revokedAt: string;
  canonical: string;
  signature: string;
}

function canonical(entity: Fingerprint, agent: AgentId, revokedAt: string): string {
  return JSON.stringify({ type: 'kith-agent-revocation', version: 1, entity, agent, revokedAt }) + '\n';
}

/** Signs a revocation of one agent certificate with the entity key (docs/protocol.md). */
export async function revokeAgentCertificate(
  entityKey: openpgp.PrivateKey,
  agent: AgentId,
  now = new Date(),
): Promise<AgentRevocation> {
  const entity = asFingerprint(entityKey.getFingerprint());
  const revokedAt = now.toISOString();
  const text = canonical(entity, agent, revokedAt);
  return { entity, agent, revokedAt, canonical: text, signature: await signDetached(entityKey, text) };
}

/** Checks a received revocation against the entity's public key. Throws ERR_REVOCATION_INVALID. */
export async function verifyAgentRevocation(
  entityKey: openpgp.PublicKey,
  text: string,
  signature: string,
): Promise<AgentRevocation> {
  let parsed: { type: string; version: number; entity: string; agent: string; revokedAt: string };
  try {
    parsed = JSON.parse(text);
    if (parsed.type !== 'kith-agent-revocation' || parsed.version !== 1) throw new Error('wrong type');
    const entity = asFingerprint(parsed.entity);
    const agent = asAgentId(parsed.agent);
    if (canonical(entity, agent, parsed.revokedAt) !== text) throw new Error('not canonical');
  } catch (err) {
    throw new KithError('ERR_REVOCATION_INVALID', `malformed agent revocation: ${(err as Error).message}`);
  }
  if (parsed.entity !== entityKey.getFingerprint().toUpperCase()) {
    throw new KithError('ERR_REVOCATION_INVALID', 'the revocation names another entity');
  }
  if (!(await verifyDetached(entityKey, text, signature))) {
    throw new KithError('ERR_REVOCATION_INVALID', 'the revocation signature does not verify');
  }
  return {
    entity: parsed.entity as Fingerprint,
    agent: parsed.agent as AgentId,
    revokedAt: parsed.revokedAt,
    canonical: text,
    signature,
  };
}

import type { AgentId, Fingerprint } from '../../common/ids.ts';
import { verifyAgentCertificate } from '../identity/certificate.ts';
import type { Identity } from '../identity/identity.ts';
import type { CertifiedAgent, TrustView } from '../routing/trust.ts';
import type { AgentRecord, TrustStore } from './store.ts';

const SIGNATURE_START = '-----BEGIN PGP SIGNATURE-----';

/** A certificate as path records carry it: canonical text, then the armored signature. */
export function encodeCertificate(cert: { canonical: string; signature: string }): Buffer {
  return Buffer.from(cert.canonical + cert.signature, 'utf8');
}

export function decodeCertificate(bytes: Uint8Array): { canonical: string; signature: string } | undefined {
  const text = Buffer.from(bytes).toString('utf8');
  const at = text.indexOf(SIGNATURE_START);
  if (at <= 0) return undefined;
  return { canonical: text.slice(0, at), signature: text.slice(at) };
}

/**
 * The protocol core's view of trust (agent/routing/trust.ts), answered from the trust store.
 * Certificate checks are OpenPGP verifications (~1 ms each), so verdicts are cached per
 * certificate text.
 */
export class TrustStoreView implements TrustView {
  readonly self: Fingerprint;
  private readonly verdicts = new Map<string, boolean>();

  constructor(
    private readonly trust: TrustStore,
    private readonly identity: Identity,
  ) {
    this.self = identity.fingerprint;
  }

  relayTargets(entity: Fingerprint): CertifiedAgent[] {
    if (entity !== this.self && !this.trust.isTrustedEntity(entity)) return [];
    return this.trust
      .certifiedAgents(entity)
      .filter((a) => a.agentId !== this.identity.agentId)
      .map((a) => toCertified(a));
  }

  ownCertificate(): Uint8Array {
    return encodeCertificate(this.identity.certificate);
  }

  async verifyCertificate(
    entity: Fingerprint,
    agent: AgentId,
    onionKey: Buffer,
    certificate: Uint8Array,
  ): Promise<boolean | undefined> {
    const key = await this.trust.publicKey(entity);
    if (!key) return undefined;
    // The claim is part of the key: a verdict on one (agent, onion key) pair says nothing of another
    // made with the same certificate (it used to: a cached true passed a wrong claim).
    const cacheKey = `${entity}|${agent}|${onionKey.toString('base64url')}|${Buffer.from(certificate).toString('base64')}`;
    const cached = this.verdicts.get(cacheKey);
    if (cached !== undefined) return cached;
    const decoded = decodeCertificate(certificate);
    let verdict = false;
    if (decoded) {
      try {
        const cert = await verifyAgentCertificate(key, decoded.canonical, decoded.signature);
        verdict = cert.body.agent === agent && cert.body.onionKey === onionKey.toString('base64url');
      } catch {
        verdict = false;
      }
    }
    this.verdicts.set(cacheKey, verdict);
    // A certified agent of the recipient learned from a path record (a device added since): kept,
    // so the next message to its entity is wrapped for its key too (docs/protocol.md 7.8): a
    // device without the entity key could not open a message that names only the entity key.
    if (verdict && decoded && this.trust.agent(agent) === undefined)
      await this.trust.addAgentCertificate(decoded).catch(() => undefined);
    return verdict;
  }

  isRevoked(agent: AgentId): boolean {
    return this.trust.isRevokedAgent(agent);
  }

  hasEntityKey(entity: Fingerprint): boolean {
    return entity === this.self || this.trust.entity(entity)?.publicKey !== undefined;
  }

  async entityKey(entity: Fingerprint): Promise<Uint8Array | undefined> {
    if (entity === this.self) return this.identity.entityPublic.write();
    return (await this.trust.publicKey(entity))?.write();
  }

  async learnEntityKey(entity: Fingerprint, key: Uint8Array): Promise<void> {
    await this.trust.addDiscoveredKey(key, entity);
  }
}

function toCertified(record: AgentRecord): CertifiedAgent {
  return {
    agent: record.agentId,
    entity: record.entity,
    onionKey: record.onionKey,
    certificate: encodeCertificate(record.certificate),
  };
}

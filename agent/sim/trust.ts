import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { AgentId, Fingerprint } from '../../common/ids.ts';
import { SignatureVerifier, publicFromAgentId, type AgentKeys } from '../onion/keys.ts';
import type { CertifiedAgent, TrustView } from '../routing/trust.ts';

/**
 * The simulator's stand-in for OpenPGP: each entity has a plain Ed25519 key, and an agent
 * certificate is that key's signature over (entity | agent key | onion key). Every simulated agent
 * may look up every entity key (as if all were contacts); revocations are world-wide.
 */
export class SimWorld {
  private readonly entities = new Map<Fingerprint, { publicRaw: Buffer; agents: CertifiedAgent[] }>();
  private readonly verifier = new SignatureVerifier();
  /** Agents revoked everywhere. */
  readonly revoked = new Set<AgentId>();

  /** Creates an entity (optionally under a real OpenPGP fingerprint) and certifies the given agents for it. */
  addEntity(agents: AgentKeys[], fingerprintOverride?: Fingerprint): Fingerprint {
    const pair = generateKeyPairSync('ed25519');
    const der = pair.publicKey.export({ format: 'der', type: 'spki' });
    const publicRaw = der.subarray(der.length - 32);
    const fingerprint =
      fingerprintOverride ??
      (createHash('sha256')
        .update(publicRaw)
        .digest()
        .subarray(0, 20)
        .toString('hex')
        .toUpperCase() as Fingerprint);
    const certified = agents.map((k) => ({
      agent: k.id,
      entity: fingerprint,
      onionKey: k.onionPublic,
      certificate: certify(pair.privateKey, fingerprint, k.signPublic, k.onionPublic),
    }));
    this.entities.set(fingerprint, { publicRaw, agents: certified });
    return fingerprint;
  }

  agentsOf(entity: Fingerprint): CertifiedAgent[] {
    return this.entities.get(entity)?.agents ?? [];
  }

  verify(
    entity: Fingerprint,
    signPublic: Buffer,
    onionKey: Buffer,
    certificate: Uint8Array,
  ): boolean | undefined {
    const e = this.entities.get(entity);
    if (!e) return undefined;
    return this.verifier.verify(e.publicRaw, certBody(entity, signPublic, onionKey), certificate);
  }
}

function certBody(entity: Fingerprint, signPublic: Buffer, onionKey: Buffer): Buffer {
  return Buffer.concat([Buffer.from('kith-sim-cert'), Buffer.from(entity, 'hex'), signPublic, onionKey]);
}

function certify(key: KeyObject, entity: Fingerprint, signPublic: Buffer, onionKey: Buffer): Buffer {
  return sign(null, certBody(entity, signPublic, onionKey), key);
}

/** One simulated agent's trust: its own entity, and the neighbours it trusts (its graph edges). */
export class SimTrust implements TrustView {
  /** Agents this one trusts as neighbours. */
  readonly trusted = new Set<AgentId>();
  /** Entity of each trusted neighbour agent. */
  private readonly entityOf = new Map<AgentId, Fingerprint>();

  constructor(
    private readonly world: SimWorld,
    readonly self: Fingerprint,
    private readonly keys: AgentKeys,
  ) {}

  /** Trusts a neighbour agent of an entity. */
  trust(agent: AgentId, entity: Fingerprint): void {
    this.trusted.add(agent);
    this.entityOf.set(agent, entity);
  }

  relayTargets(entity: Fingerprint): CertifiedAgent[] {
    const agents = this.world.agentsOf(entity);
    if (entity === this.self) return agents;
    return agents.filter((a) => this.trusted.has(a.agent));
  }

  ownCertificate(): Uint8Array {
    return (
      this.world.agentsOf(this.self).find((a) => a.agent === this.keys.id)?.certificate ?? Buffer.alloc(0)
    );
  }

  async verifyCertificate(
    entity: Fingerprint,
    agent: AgentId,
    onionKey: Buffer,
    certificate: Uint8Array,
  ): Promise<boolean | undefined> {
    return this.world.verify(entity, publicFromAgentId(agent), onionKey, certificate);
  }

  isRevoked(agent: AgentId): boolean {
    return this.world.revoked.has(agent);
  }
}

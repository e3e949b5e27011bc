import * as openpgp from 'openpgp';
import type { Logger } from '../../common/logger.ts';
import { KithError } from '../../common/errors.ts';
import { asAgentId, asFingerprint, type AgentId, type Fingerprint } from '../../common/ids.ts';
import { statementCache, type Db } from '../../store/db.ts';
import { verifyAgentCertificate, type AgentCertificate } from '../identity/certificate.ts';
import {
  admit,
  certificateValidAt,
  DEFAULT_PROVISIONAL_LIMITS,
  type Admission,
  type ProvisionalLimits,
} from './decisions.ts';
import { verifyAgentRevocation, type AgentRevocation } from './revocation.ts';
import { migrateTrust } from './schema.ts';
import { InvitationStore, type RedeemResult } from './invitations.ts';
import {
  asFingerprintOrThrow,
  parseCertAgent,
  parseCertEntity,
  readPublicKey,
  toEntity,
  type AgentRecord,
  type AgentRow,
  type EntityRecord,
  type EntityRow,
  type TrustChange,
  type TrustSource,
} from './records.ts';

export type { AgentRecord, EntityRecord, TrustChange, TrustSource } from './records.ts';
export { hashSecret, type RedeemResult } from './invitations.ts';

/** Revocations a hello carries at most (~0.6 KiB each, well inside a 256 KiB control message). */
const MAX_HELD_REVOCATIONS = 200;

/**
 * Durable trust state of one node: entities (trusted neighbours, contacts), their certified
 * agents, revocations and invitations. All checks the connection gater makes are synchronous
 * SQLite reads, so admission never waits on the event loop.
 */
export class TrustStore {
  private readonly keys = new Map<string, openpgp.PublicKey>();
  private readonly listeners = new Set<(change: TrustChange) => void>();
  private readonly invitations: InvitationStore;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    migrateTrust(db);
    this.invitations = new InvitationStore(db, clock);
    this.stmt = statementCache(db);
  }

  /** Statements compiled once: isRevoked and the entity lookups run for every packet and report. */
  private readonly stmt: ReturnType<typeof statementCache>;

  /** Subscribes to trust changes; returns the unsubscribe function. */
  onChange(listener: (change: TrustChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(change: TrustChange): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        this.log.error({ err }, 'trust change listener failed');
      }
    }
  }

  // ---- entities --------------------------------------------------------------------------

  /**
   * Records an entity from its armored public key. `trusted`/`contact` only ever widen here;
   * narrowing is `revoke`. Re-adding a revoked entity needs `trusted: true` (an explicit act).
   */
  async addEntity(
    armored: string,
    options: { trusted: boolean; contact: boolean; source: TrustSource; expect?: Fingerprint },
  ): Promise<EntityRecord> {
    const key = await readPublicKey(armored);
    const fingerprint = asFingerprint(key.getFingerprint());
    if (options.expect !== undefined && options.expect !== fingerprint) {
      throw new KithError(
        'ERR_FINGERPRINT_MISMATCH',
        `the key presented has fingerprint ${fingerprint}, not the expected ${options.expect}`,
        'check the fingerprint out of band again; someone may be impersonating this entity',
      );
    }
    const user = key.users.find((u) => u.userID)?.userID;
    const now = this.clock();
    const existing = this.entityRow(fingerprint);
    const trusted = options.trusted || (existing?.trusted === 1 && existing.revoked_at === null);
    const contact = options.contact || existing?.contact === 1;
    this.stmt(
      `INSERT INTO trust_entity (fingerprint, public_key, name, email, trusted, contact, source, added_at)
         VALUES (@fingerprint, @key, @name, @email, @trusted, @contact, @source, @now)
         ON CONFLICT(fingerprint) DO UPDATE SET public_key = @key, name = @name, email = @email,
           trusted = @trusted, contact = @contact,
           revoked_at = CASE WHEN @trusted = 1 THEN NULL ELSE revoked_at END`,
    ).run({
      fingerprint,
      key: key.armor(),
      name: user?.name ?? '',
      email: user?.email ?? '',
      trusted: trusted ? 1 : 0,
      contact: contact ? 1 : 0,
      source: existing?.source ?? options.source,
      now,
    });
    this.keys.set(fingerprint, key);
    if (trusted && !(existing?.trusted === 1 && existing.revoked_at === null)) {
      this.emit({ kind: 'entity-trusted', fingerprint });
    }
    return this.entity(fingerprint)!;
  }

  /**
   * Records a key that came in a discovery answer (docs/protocol.md, "Discovery"), once its
   * fingerprint is the one asked for: a known entity, neither trusted nor a contact (writing
   * to it makes it a contact). Only user ids the key itself certifies are kept, so no relay on
   * the way can attach an address of its choosing. Throws ERR_FINGERPRINT_MISMATCH, ERR_BAD_KEY.
   */
  async addDiscoveredKey(binary: Uint8Array, expect: Fingerprint): Promise<EntityRecord> {
    let key: openpgp.PublicKey;
    try {
      const read = await openpgp.readKey({ binaryKey: binary });
      key = read.isPrivate() ? read.toPublic() : read;
    } catch (err) {
      throw new KithError('ERR_BAD_KEY', `not an OpenPGP public key: ${(err as Error).message}`);
    }
    if (asFingerprint(key.getFingerprint()) !== expect) {
      throw new KithError(
        'ERR_FINGERPRINT_MISMATCH',
        `the key presented has fingerprint ${key.getFingerprint().toUpperCase()}, not ${expect}`,
      );
    }
    try {
      await key.verifyPrimaryKey(new Date(this.clock()));
    } catch (err) {
      throw new KithError('ERR_BAD_KEY', `the key for ${expect} is not usable: ${(err as Error).message}`);
    }
    const certified = await Promise.all(
      key.users.map((u) =>
        u.verify(new Date(this.clock())).then(
          () => true,
          () => false,
        ),
      ),
    );
    key.users = key.users.filter((_, i) => certified[i]);
    return this.addEntity(key.armor(), { trusted: false, contact: false, source: 'discovery', expect });
  }

  /**
   * Trusts an entity by fingerprint checked out of band. Its key arrives later over the hello
   * protocol (checked against this fingerprint) from an agent at one of `addresses`.
   */
  trustFingerprint(fingerprintText: string, options: { addresses?: string[] } = {}): EntityRecord {
    const fingerprint = asFingerprintOrThrow(fingerprintText);
    const now = this.clock();
    this.stmt(
      `INSERT INTO trust_entity (fingerprint, trusted, contact, source, added_at)
         VALUES (?, 1, 1, 'fingerprint', ?)
         ON CONFLICT(fingerprint) DO UPDATE SET trusted = 1, contact = 1, revoked_at = NULL`,
    ).run(fingerprint, now);
    this.addAddressHints(fingerprint, options.addresses ?? []);
    this.emit({ kind: 'entity-trusted', fingerprint });
    return this.entity(fingerprint)!;
  }

  /** Remembers where an entity's agents may be dialled (given by the user, or handed on to a new agent). */
  addAddressHints(fingerprint: Fingerprint, addresses: readonly string[]): void {
    const insert = this.stmt(
      'INSERT OR IGNORE INTO trust_address_hint (entity, address, added_at) VALUES (?, ?, ?)',
    );
    for (const address of addresses) insert.run(fingerprint, address, this.clock());
  }

  /** Drops trust in an entity and all its agents; links close at once (the listener does it). */
  revoke(fingerprintText: string): EntityRecord {
    const fingerprint = asFingerprintOrThrow(fingerprintText);
    const row = this.entityRow(fingerprint);
    if (row === undefined) {
      throw new KithError('ERR_UNKNOWN_ENTITY', `no entity ${fingerprint} is known`, 'see `kith contacts`');
    }
    this.stmt('UPDATE trust_entity SET trusted = 0, revoked_at = ? WHERE fingerprint = ?').run(
      this.clock(),
      fingerprint,
    );
    const agents = this.agentsOf(fingerprint).map((a) => a.agentId);
    this.emit({ kind: 'entity-revoked', fingerprint, agents });
    return this.entity(fingerprint)!;
  }

  entity(fingerprint: Fingerprint): EntityRecord | undefined {
    const row = this.entityRow(fingerprint);
    return row === undefined ? undefined : toEntity(row);
  }

  /** Every known entity, trusted or contact or revoked, by e-mail address. */
  entities(): EntityRecord[] {
    return (this.stmt('SELECT * FROM trust_entity ORDER BY email, fingerprint').all() as EntityRow[]).map(
      toEntity,
    );
  }

  /** The entity's parsed public key, or undefined when not known yet. */
  async publicKey(fingerprint: Fingerprint): Promise<openpgp.PublicKey | undefined> {
    const cached = this.keys.get(fingerprint);
    if (cached) return cached;
    const armored = this.entityRow(fingerprint)?.public_key;
    if (!armored) return undefined;
    const key = await readPublicKey(armored);
    this.keys.set(fingerprint, key);
    return key;
  }

  /** Addresses given with `trust FINGERPRINT --address` (dial targets before anything is learned). */
  addressHints(fingerprint: Fingerprint): string[] {
    return (
      this.stmt('SELECT address FROM trust_address_hint WHERE entity = ?').all(fingerprint) as {
        address: string;
      }[]
    ).map((r) => r.address);
  }

  private entityRow(fingerprint: string): EntityRow | undefined {
    return this.stmt('SELECT * FROM trust_entity WHERE fingerprint = ?').get(fingerprint) as
      EntityRow | undefined;
  }

  // ---- agents ----------------------------------------------------------------------------

  /**
   * Stores an agent certificate after checking it against its (known) entity key. Refuses
   * certificates of unknown entities and of revoked agents. Returns whether it was new.
   */
  async addAgentCertificate(cert: { canonical: string; signature: string }): Promise<AgentRecord> {
    const entity = parseCertEntity(cert.canonical);
    // Hellos repeat the certificates of every sibling: one stored already, still valid and not
    // revoked, is not checked again.
    const same = this.stmt('SELECT * FROM trust_agent WHERE cert_canonical = ? AND cert_signature = ?').get(
      cert.canonical,
      cert.signature,
    ) as AgentRow | undefined;
    if (
      same !== undefined &&
      !this.isRevokedAgent(same.peer_id) &&
      certificateValidAt(same.not_before, same.not_after, this.clock())
    ) {
      return this.toAgent(same);
    }
    const key = await this.publicKey(entity);
    if (key === undefined) {
      throw new KithError('ERR_UNKNOWN_ENTITY', `the certificate's entity ${entity} is not known here`);
    }
    const checked: AgentCertificate = await verifyAgentCertificate(
      key,
      cert.canonical,
      cert.signature,
      new Date(this.clock()),
    );
    const agent = checked.body.agent;
    if (this.isRevokedAgent(agent)) {
      throw new KithError('ERR_AGENT_REVOKED', `agent ${agent} has been revoked`);
    }
    const known = this.agentRow(agent);
    if (known !== undefined && known.entity !== entity) {
      throw new KithError('ERR_CERT_WRONG_ENTITY', `agent ${agent} is already certified by another entity`);
    }
    const notBefore = Date.parse(checked.body.notBefore);
    const notAfter = Date.parse(checked.body.notAfter);
    // Keep the newest certificate (renewals extend notAfter).
    if (known === undefined || notAfter > known.not_after) {
      this.stmt(
        `INSERT INTO trust_agent (peer_id, entity, onion_key, not_before, not_after, cert_canonical, cert_signature, added_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(peer_id) DO UPDATE SET onion_key = excluded.onion_key, not_before = excluded.not_before,
             not_after = excluded.not_after, cert_canonical = excluded.cert_canonical,
             cert_signature = excluded.cert_signature`,
      ).run(
        agent,
        entity,
        checked.body.onionKey,
        notBefore,
        notAfter,
        cert.canonical,
        cert.signature,
        this.clock(),
      );
    }
    if (known === undefined) this.emit({ kind: 'agent-added', fingerprint: entity, agent });
    return this.agent(agent)!;
  }

  /**
   * Applies an entity-signed revocation of one of its agents (it travels on to neighbours).
   * Returns false when it was already known.
   */
  async addAgentRevocation(revocation: { canonical: string; signature: string }): Promise<boolean> {
    const entity = parseCertEntity(revocation.canonical);
    // Every hello carries every revocation its sender holds: one we already hold costs a lookup,
    // not a signature check.
    if (this.holdsRevocationOf(parseCertAgent(revocation.canonical))) return false;
    const key = await this.publicKey(entity);
    if (key === undefined) {
      throw new KithError('ERR_UNKNOWN_ENTITY', `the revocation's entity ${entity} is not known here`);
    }
    const checked: AgentRevocation = await verifyAgentRevocation(
      key,
      revocation.canonical,
      revocation.signature,
    );
    if (this.isRevokedAgent(checked.agent)) return false;
    this.stmt(
      `INSERT INTO trust_agent_revocation (peer_id, entity, revoked_at, canonical, signature) VALUES (?, ?, ?, ?, ?)`,
    ).run(checked.agent, entity, this.clock(), revocation.canonical, revocation.signature);
    this.emit({ kind: 'agent-revoked', fingerprint: entity, agent: checked.agent });
    return true;
  }

  private holdsRevocationOf(agent: string | undefined): boolean {
    return (
      agent !== undefined &&
      this.stmt('SELECT 1 FROM trust_agent_revocation WHERE peer_id = ?').get(agent) !== undefined
    );
  }

  /**
   * Checks a certificate as `addAgentCertificate` would (known entity, signature, validity, not
   * revoked) without storing it: a hello's certificate is checked before the revocations it
   * carries are, so a peer that cannot show one pays for nothing more.
   */
  async checkAgentCertificate(cert: { canonical: string; signature: string }): Promise<void> {
    const entity = parseCertEntity(cert.canonical);
    const key = await this.publicKey(entity);
    if (key === undefined) {
      throw new KithError('ERR_UNKNOWN_ENTITY', `the certificate's entity ${entity} is not known here`);
    }
    const checked = await verifyAgentCertificate(key, cert.canonical, cert.signature, new Date(this.clock()));
    if (this.isRevokedAgent(checked.body.agent)) {
      throw new KithError('ERR_AGENT_REVOKED', `agent ${checked.body.agent} has been revoked`);
    }
  }

  /** Signed revocations of this entity's agents, to hand on to neighbours. */
  agentRevocations(fingerprint: Fingerprint): { canonical: string; signature: string }[] {
    return this.stmt(
      'SELECT canonical, signature FROM trust_agent_revocation WHERE entity = ? AND canonical IS NOT NULL',
    ).all(fingerprint) as { canonical: string; signature: string }[];
  }

  /**
   * Every signed agent revocation we hold for an entity we trust (our own included), to hand on in
   * hellos: a neighbour that trusts the entity must learn that a lost device is void even when it
   * never links with that entity's agents. The receiver verifies each against the entity key.
   */
  heldRevocations(): { canonical: string; signature: string }[] {
    return this.stmt(
      `SELECT r.canonical, r.signature FROM trust_agent_revocation r
         JOIN trust_entity e ON e.fingerprint = r.entity
         WHERE r.canonical IS NOT NULL AND e.trusted = 1 AND e.revoked_at IS NULL
         ORDER BY r.revoked_at DESC LIMIT ?`,
    ).all(MAX_HELD_REVOCATIONS) as { canonical: string; signature: string }[];
  }

  agent(agentId: AgentId): AgentRecord | undefined {
    const row = this.agentRow(agentId);
    return row === undefined ? undefined : this.toAgent(row);
  }

  /** All certified agents of an entity (expired and revoked ones included, flagged). */
  agentsOf(fingerprint: Fingerprint): AgentRecord[] {
    return (this.stmt('SELECT * FROM trust_agent WHERE entity = ?').all(fingerprint) as AgentRow[]).map(
      (row) => this.toAgent(row),
    );
  }

  private agentRow(agentId: string): AgentRow | undefined {
    return this.stmt('SELECT * FROM trust_agent WHERE peer_id = ?').get(agentId) as AgentRow | undefined;
  }

  private toAgent(row: AgentRow): AgentRecord {
    return {
      agentId: asAgentId(row.peer_id),
      entity: asFingerprint(row.entity),
      onionKey: Buffer.from(row.onion_key, 'base64url'),
      notBefore: row.not_before,
      notAfter: row.not_after,
      certificate: { canonical: row.cert_canonical, signature: row.cert_signature },
      revoked: this.isRevokedAgent(row.peer_id),
    };
  }

  // ---- questions the gater and the protocol core ask (TrustView) -------------------------

  /** We link with and forward for this entity. */
  isTrustedEntity(fingerprint: Fingerprint): boolean {
    const row = this.entityRow(fingerprint);
    return row !== undefined && row.trusted === 1 && row.revoked_at === null;
  }

  /** The entity that certified this agent, if any certificate is stored. */
  entityOfAgent(agentId: AgentId): Fingerprint | undefined {
    const row = this.agentRow(agentId);
    return row === undefined ? undefined : asFingerprint(row.entity);
  }

  /** Its certificate was revoked by its entity, or its entity's trust was revoked here. */
  isRevokedAgent(agentId: string): boolean {
    if (this.stmt('SELECT 1 FROM trust_agent_revocation WHERE peer_id = ?').get(agentId)) return true;
    const row = this.stmt(
      `SELECT e.revoked_at FROM trust_agent a JOIN trust_entity e ON e.fingerprint = a.entity WHERE a.peer_id = ?`,
    ).get(agentId) as { revoked_at: number | null } | undefined;
    return row?.revoked_at != null;
  }

  /** Holds a stored certificate, valid now, from an entity we trust, and is not revoked. */
  isTrustedAgent(agentId: AgentId): boolean {
    const row = this.agentRow(agentId);
    if (row === undefined || this.isRevokedAgent(agentId)) return false;
    return (
      this.isTrustedEntity(asFingerprint(row.entity)) &&
      certificateValidAt(row.not_before, row.not_after, this.clock())
    );
  }

  /** Valid, unrevoked certified agents of a trusted entity, with their onion keys. */
  certifiedAgents(fingerprint: Fingerprint): AgentRecord[] {
    if (!this.isTrustedEntity(fingerprint)) return [];
    const now = this.clock();
    return this.agentsOf(fingerprint).filter(
      (a) => !a.revoked && certificateValidAt(a.notBefore, a.notAfter, now),
    );
  }

  /**
   * The gater's decision for a peer that has just completed the Noise handshake; `load` is how
   * many unknown peers the link manager has let in (agent/trust/decisions.ts, `admit`).
   */
  admission(
    agentId: string,
    load: { provisionalOpen: number; recentFromAddress: number } = {
      provisionalOpen: 0,
      recentFromAddress: 0,
    },
    limits: ProvisionalLimits = DEFAULT_PROVISIONAL_LIMITS,
  ): Admission {
    const id = agentId as AgentId;
    return admit({
      revoked: this.isRevokedAgent(id),
      certifiedByTrusted: this.isTrustedAgent(id),
      ...load,
      limits,
    });
  }

  /** Entities trusted by fingerprint whose key or agents are not known yet. */
  awaitingKey(): Fingerprint[] {
    return (
      this.stmt(
        `SELECT fingerprint FROM trust_entity e WHERE trusted = 1 AND revoked_at IS NULL
           AND (public_key IS NULL OR NOT EXISTS (SELECT 1 FROM trust_agent a WHERE a.entity = e.fingerprint))`,
      ).all() as { fingerprint: string }[]
    ).map((r) => asFingerprint(r.fingerprint));
  }

  // ---- invitations (invitations.ts) -------------------------------------------------------

  /** Issues a one-time invitation secret valid for `ttlMs`; only its hash is stored. */
  issueInvitation(ttlMs: number): { secret: Uint8Array; expiresAt: number } {
    return this.invitations.issue(ttlMs);
  }

  /** True while some invitation is neither redeemed nor expired (the gater admits strangers provisionally). */
  hasOpenInvitation(): boolean {
    return this.invitations.hasOpen();
  }

  /** Marks an invitation redeemed by `by`, atomically (InvitationStore.redeem). */
  redeemInvitation(secret: Uint8Array, by: string): RedeemResult {
    return this.invitations.redeem(secret, by);
  }

  /** Puts a redeemed invitation back when the exchange after redeeming failed, so the code still works. */
  unredeemInvitation(id: string): void {
    this.invitations.unredeem(id);
  }
}

import type { AgentId, Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { TrustChange, TrustStore } from '../trust/store.ts';
import { revocationOf, type ContactValue, type Op, type Registers, type Touched } from './model.ts';

/** A signed agent revocation as the trust store keeps it and a `revocation` op carries it (JSON). */
type Statement = { canonical: string; signature: string };

export interface TrustBridgeOptions {
  trust: TrustStore;
  /** Our own entity (never a contact of itself). */
  self: Fingerprint;
  registers: Registers;
  record: (ops: Op[]) => void;
  /** The revocation op to record for an agent now (Replica.revocationOp), if one is needed. */
  revocationOp: (agent: AgentId, statement: string) => Op | undefined;
  log: Logger;
}

/**
 * Between the trust store and the merged state: an entity trusted (an invitation redeemed, `kith
 * trust`) or revoked on one device becomes a `contact` op, and a sibling's op is made true here,
 * so the same friends are trusted, and a revoked one cut off, on every device. Fingerprints being
 * applied are remembered so the trust store's own change events for them are not recorded again.
 * An agent revocation the trust store learns (`kith agent revoke` here, a hello) becomes a
 * `revocation` op with its signed statement, and a sibling's is checked and stored here: the
 * trust store then cuts the agent off (links, routing), and the replica refuses its later changes.
 */
export class TrustBridge {
  private unsubscribe: (() => void) | undefined;
  private readonly applying = new Set<string>();
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly o: TrustBridgeOptions) {}

  start(): void {
    this.unsubscribe = this.o.trust.onChange((change) => this.onChange(change));
    // Revocations from before sync carried them (or learned while it was not running), and
    // synced ones the trust store could not take yet: both ways once more.
    const ops = new Map<string, Op>();
    for (const s of [...this.o.trust.agentRevocations(this.o.self), ...this.o.trust.heldRevocations()]) {
      const agent = agentOf(s);
      const op = agent && !ops.has(agent) && this.o.revocationOp(agent, JSON.stringify(s));
      if (op) ops.set(agent, op);
    }
    const all = [...ops.values()];
    for (let i = 0; i < all.length; i += 100) this.o.record(all.slice(i, i + 100));
    void this.applied({
      entries: new Set(),
      folders: false,
      contacts: new Set(),
      revocations: this.pending(),
    }).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.tail;
  }

  private onChange(change: TrustChange): void {
    if (change.kind === 'agent-revoked') return this.onAgentRevoked(change.fingerprint, change.agent);
    if (change.kind !== 'entity-trusted' && change.kind !== 'entity-revoked') return;
    const p = change.fingerprint;
    if (p === this.o.self || this.applying.has(p)) return;
    const entity = this.o.trust.entity(p);
    const v: ContactValue = {
      key: entity?.publicKey ?? '',
      trusted: change.kind === 'entity-trusted',
      contact: entity?.contact ?? true,
      revoked: change.kind === 'entity-revoked',
    };
    this.o.record([{ t: 'contact', p, v }]);
  }

  /** A revocation stored here becomes an op, unless the merged state bounds the agent already. */
  private onAgentRevoked(entity: Fingerprint, agent: AgentId): void {
    const statement = this.o.trust.agentRevocations(entity).find((s) => agentOf(s) === agent);
    if (statement === undefined) return; // no signed statement (an entity revoked here): nothing to carry
    const op = this.o.revocationOp(agent, JSON.stringify(statement));
    if (op) this.o.record([op]);
  }

  /** Agents the merged state revokes and the trust store does not (yet: an unknown entity's key). */
  private pending(): string[] {
    const agents = new Set<string>();
    for (const [key] of this.o.registers.scan('r/')) agents.add(key.slice(2, key.lastIndexOf('/')));
    return [...agents].filter((a) => !this.o.trust.isRevokedAgent(a));
  }

  /** Checks and stores a sibling's agent revocation (the trust store verifies the entity's signature). */
  private async applyRevocation(agent: string): Promise<void> {
    const text = revocationOf(this.o.registers, agent)?.statement;
    if (text === undefined || this.o.trust.isRevokedAgent(agent)) return;
    let statement: Statement;
    try {
      statement = JSON.parse(text) as Statement;
      if (typeof statement.canonical !== 'string' || typeof statement.signature !== 'string')
        throw new Error('not a signed revocation');
      if (agentOf(statement) !== agent) throw new Error('the statement names another agent');
    } catch (err) {
      this.o.log.warn({ agent, err: (err as Error).message }, 'a synced agent revocation is malformed');
      return;
    }
    try {
      await this.o.trust.addAgentRevocation(statement);
    } catch (err) {
      // ERR_UNKNOWN_ENTITY: a friend's revocation before its key is here (tried again when a
      // contact arrives); ERR_REVOCATION_INVALID: a bad signature, which the trust store refuses.
      this.o.log.warn({ agent, err: (err as Error).message }, 'could not apply a synced agent revocation');
    }
  }

  /** Makes siblings' contact decisions and agent revocations true in the trust store (in order, one at a time). */
  applied(touched: Touched): Promise<void> {
    const run = this.tail.then(async () => {
      const revoked = new Set(touched.revocations);
      if (touched.contacts.size > 0) for (const a of this.pending()) revoked.add(a);
      for (const p of touched.contacts) {
        if (p === this.o.self) continue;
        const v = this.o.registers.get(`c/${p}`)?.v as ContactValue | undefined;
        if (v === undefined) continue;
        this.applying.add(p);
        try {
          await this.apply(p as Fingerprint, v);
        } catch (err) {
          this.o.log.warn(
            { fingerprint: p, err: (err as Error).message },
            'could not apply a synced trust change',
          );
        } finally {
          this.applying.delete(p);
        }
      }
      for (const agent of revoked) await this.applyRevocation(agent);
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async apply(p: Fingerprint, v: ContactValue): Promise<void> {
    const { trust } = this.o;
    const now = trust.entity(p);
    if (v.revoked) {
      // An entity trusted and revoked while this device was away is recorded here as revoked too,
      // not left unknown: the same friends, and the same cut-off ones, on every device.
      if (now === undefined) {
        if (v.key)
          await trust.addEntity(v.key, {
            trusted: false,
            contact: v.contact,
            source: 'fingerprint',
            expect: p,
          });
        else trust.trustFingerprint(p);
      }
      if (trust.entity(p)?.revokedAt === undefined) trust.revoke(p);
      return;
    }
    if (!v.trusted || (now?.trusted && now.revokedAt === undefined)) return;
    if (v.key)
      await trust.addEntity(v.key, { trusted: true, contact: v.contact, source: 'fingerprint', expect: p });
    else trust.trustFingerprint(p);
  }
}

/** The agent a signed revocation names (undefined when its canonical text does not parse). */
function agentOf(statement: Statement): AgentId | undefined {
  try {
    const agent = (JSON.parse(statement.canonical) as { agent?: unknown }).agent;
    return typeof agent === 'string' ? (agent as AgentId) : undefined;
  } catch {
    return undefined;
  }
}

import type { KeyObject } from 'node:crypto';
import type { AgentId } from '../../common/ids.ts';
import {
  admitChange,
  parseBody,
  signChange,
  stampOf,
  standingOf,
  verifyChange,
  type ChangeBody,
  type Refusal,
  type SignedChange,
  type VersionVector,
} from './change.ts';
import { HybridClock } from './hlc.ts';
import { applyOps, MemoryRegisters, revocationOf, type Op, type Registers, type Touched } from './model.ts';

/** Where a replica keeps change logs and registers (SyncStore in a node, memory in tests). */
export interface ReplicaStore extends Registers {
  transaction<T>(fn: () => T): T;
  appendLog(author: AgentId, seq: number, change: SignedChange): void;
  storedBody(author: string, seq: number): string | undefined;
  changesFrom(author: string, seq: number, limit: number): SignedChange[];
  versionVector(): VersionVector;
  meta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
}

/** What receive() did with one change. */
export type Received =
  | { result: 'applied'; body: ChangeBody; touched: Touched }
  | { result: 'duplicate' }
  | { result: 'refused'; reason: Refusal; author?: string; seq?: number };

export interface ReplicaOptions {
  store: ReplicaStore;
  self: AgentId;
  /** Our entity's fingerprint (changes of other entities are refused). */
  entity: string;
  /** This agent's Ed25519 key (signs its changes). */
  key: KeyObject;
  /** An author's standing now: our entity's certified agent, revoked, or unknown. */
  authorStatus: (agent: AgentId) => 'sibling' | 'revoked' | 'unknown';
  now?: () => number;
  /** How far ahead of our clock a change's stamp may be (default 5 minutes). */
  maxSkewMs?: number;
}

/**
 * One agent's replica of the entity's state, without I/O: makes signed local changes, admits or
 * refuses received ones (agent/sync/change.ts admitChange), applies them to the registers in the
 * same transaction as their log row, and answers "what does a sibling with this version vector
 * lack?". The sync engine moves changes between replicas; the mailbox bridge turns IMAP actions
 * into local changes and applied changes into IMAP state.
 */
export class Replica {
  private readonly clock: HybridClock;
  private readonly now: () => number;
  private readonly maxSkewMs: number;
  /** The version vector, kept in memory: every log write goes through this replica. */
  private readonly vv: VersionVector;

  constructor(private readonly o: ReplicaOptions) {
    this.vv = o.store.versionVector();
    this.now = o.now ?? Date.now;
    this.maxSkewMs = o.maxSkewMs ?? 5 * 60_000;
    const last = o.store.meta('clock');
    this.clock = new HybridClock(
      o.self,
      this.now,
      last ? (JSON.parse(last) as { w: number; c: number }) : undefined,
    );
  }

  get self(): AgentId {
    return this.o.self;
  }

  /**
   * Reads the version vector again from the store: after a transaction holding a local() call
   * did not commit (its caller's), the one in memory counts a change the log does not have.
   */
  reloadVersionVector(): void {
    const stored = this.o.store.versionVector();
    for (const k of Object.keys(this.vv)) delete this.vv[k as AgentId];
    Object.assign(this.vv, stored);
  }

  /**
   * Records local ops as this agent's next change; returns it (to push to linked siblings).
   * `alsoWrite`: the caller's own rows, in the same transaction (the bridge's entry mapping).
   */
  local(ops: Op[], alsoWrite?: () => void): { change: SignedChange; body: ChangeBody; touched: Touched } {
    const { store } = this.o;
    return store.transaction(() => {
      alsoWrite?.();
      const stamp = this.clock.tick();
      const seq = (this.vv[this.o.self] ?? 0) + 1;
      const body: ChangeBody = {
        v: 1,
        n: this.o.entity,
        a: this.o.self,
        s: seq,
        w: stamp.w,
        c: stamp.c,
        ops,
      };
      const change = signChange(body, this.o.key);
      store.appendLog(this.o.self, seq, change);
      const touched = applyOps(store, ops, stamp);
      store.setMeta('clock', JSON.stringify(this.clock.last()));
      this.vv[this.o.self] = seq;
      return { change, body, touched };
    });
  }

  /** Admits and applies one change received from a sibling (or refuses it, with the reason). */
  receive(change: unknown): Received {
    const body = parseBody(change);
    if (body === undefined) return { result: 'refused', reason: 'malformed' };
    const signed = change as SignedChange;
    const { store } = this.o;
    const known = this.vv[body.a] ?? 0;
    const status = standingOf(this.o.authorStatus(body.a), revocationOf(store, body.a)?.upTo, body.s);
    const admission = admitChange(body, signed, {
      entity: this.o.entity,
      author: status,
      // Only verified for changes that could be applied or compared (verifying costs ~0.1 ms).
      signatureValid: status === 'sibling' && verifyChange(signed, body.a),
      known,
      storedBody: body.s <= known ? store.storedBody(body.a, body.s) : undefined,
      now: this.now(),
      maxSkewMs: this.maxSkewMs,
    });
    if (!admission.apply) {
      if ('duplicate' in admission) return { result: 'duplicate' };
      return { result: 'refused', reason: admission.refused, author: body.a, seq: body.s };
    }
    return store.transaction(() => {
      store.appendLog(body.a, body.s, signed);
      const touched = applyOps(store, body.ops, stampOf(body));
      this.clock.observe(body);
      store.setMeta('clock', JSON.stringify(this.clock.last()));
      this.vv[body.a] = body.s;
      return { result: 'applied' as const, body, touched };
    });
  }

  versionVector(): VersionVector {
    return { ...this.vv };
  }

  /**
   * The revocation op to record for `agent` (its signed statement, else the one the registers
   * hold), bound at what this replica holds of it; undefined when a recorded bound covers that
   * already, or there is no statement.
   */
  revocationOp(agent: AgentId, statement?: string): Op | undefined {
    if (agent === this.o.self) return undefined; // a revoked device does not vouch for its own changes
    const held = this.vv[agent] ?? 0;
    const known = revocationOf(this.o.store, agent);
    const r = statement ?? known?.statement;
    if (r === undefined || (known !== undefined && known.upTo >= held)) return undefined;
    return { t: 'revocation', g: agent, r, k: held };
  }

  /** Runs `fn` (several receive() calls) in one transaction: one commit per frame, not per change. */
  batch<T>(fn: () => T): T {
    return this.o.store.transaction(fn);
  }

  /** The changes a sibling with version vector `theirs` lacks, author by author, at most `limit`. */
  changesFor(theirs: VersionVector, limit: number): SignedChange[] {
    const out: SignedChange[] = [];
    const mine = this.versionVector();
    for (const [author, seq] of Object.entries(mine).sort()) {
      const have = theirs[author] ?? 0;
      if (seq <= have) continue;
      out.push(...this.o.store.changesFrom(author, have + 1, limit - out.length));
      if (out.length >= limit) break;
    }
    return out;
  }
}

/** A replica store in memory: the property tests' replicas. */
export class MemoryReplicaStore extends MemoryRegisters implements ReplicaStore {
  private readonly logs = new Map<string, SignedChange[]>();
  private readonly metas = new Map<string, string>();

  transaction<T>(fn: () => T): T {
    return fn();
  }
  appendLog(author: AgentId, seq: number, change: SignedChange): void {
    const log = this.logs.get(author) ?? [];
    log[seq - 1] = change;
    this.logs.set(author, log);
  }
  storedBody(author: string, seq: number): string | undefined {
    return this.logs.get(author)?.[seq - 1]?.b;
  }
  changesFrom(author: string, seq: number, limit: number): SignedChange[] {
    return (this.logs.get(author) ?? []).slice(seq - 1, seq - 1 + limit);
  }
  versionVector(): VersionVector {
    const out: VersionVector = {};
    for (const [author, log] of this.logs) out[author] = log.length;
    return out;
  }
  meta(key: string): string | undefined {
    return this.metas.get(key);
  }
  setMeta(key: string, value: string): void {
    this.metas.set(key, value);
  }
}

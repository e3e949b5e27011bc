import type { AgentId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { MailStore } from '../../gateway/mailbox/types.ts';
import type { Db } from '../../store/db.ts';
import type { Identity } from '../identity/identity.ts';
import { agentKeysFromIdentity } from '../onion/keys.ts';
import type { Transport } from '../transport.ts';
import type { TrustStore } from '../trust/store.ts';
import type { PayloadCodec } from '../payload/codec.ts';
import { rawX25519, wrapKeysOf, type AgentWrapKey } from '../payload/wrap.ts';
import { MailboxBridge } from './bridge.ts';
import { historyProgress, type HistoryProgress } from './history.ts';
import { SealedForms } from './sealed.ts';
import { SyncEngine } from './engine.ts';
import { Replica } from './replica.ts';
import { SyncStore } from './store.ts';
import { TrustBridge } from './trust.ts';

export { splitTransport } from './demux.ts';
export { SyncEngine } from './engine.ts';
export { MailboxBridge } from './bridge.ts';
export { registerHistoryMethod, type HistoryProgress } from './history.ts';

/** How often unlinked siblings are dialled (a laptop coming back finds the home server). */
const SIBLING_REDIAL_MS = 30_000;

export interface RoamingOptions {
  db: Db;
  identity: Identity;
  trust: TrustStore;
  /** The sync view of the link transport (splitTransport). */
  transport: Transport;
  mail: MailStore;
  /** Links with a sibling by its known addresses (LinkManager.connect). */
  connect: (agent: AgentId) => Promise<void>;
  /**
   * Dials the addresses the agent bundle named for the siblings (LinkManager.dialHints of our own
   * entity): a new agent knows no address record of its siblings yet, only where they were when
   * `kith agent add` ran.
   */
  dialHints?: () => Promise<unknown>;
  log: Logger;
  now?: () => number;
  maxSkewMs?: number;
  /**
   * The node's end-to-end codec: with it, delivered messages travel to siblings as the ciphertext
   * they arrived in (sealed.ts); without it, as their plain bytes.
   */
  codec?: PayloadCodec;
}

/**
 * One entity's mailbox on all its agents (docs/protocol.md "Sync"): the replica (signed change
 * log, merged registers), the sync engine over the links to sibling agents, and the bridge to
 * this gateway's mailboxes. Built by agent/node.ts once the gateway's store is running.
 */
export class Roaming {
  readonly store: SyncStore;
  readonly replica: Replica;
  readonly engine: SyncEngine;
  readonly bridge: MailboxBridge;
  /** Trust decisions (entities trusted or revoked) shared with the siblings. */
  readonly trustBridge: TrustBridge;
  /** Delivered messages' ciphertexts, kept and opened for siblings (undefined without a codec). */
  readonly sealed: SealedForms | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** A redial on a non-sibling link-up is queued (several link-ups at once make one). */
  private linkRedial = false;

  constructor(private readonly o: RoamingOptions) {
    const { identity, trust } = o;
    this.store = new SyncStore(o.db);
    this.store.start();
    const status = (agent: AgentId): 'sibling' | 'revoked' | 'unknown' => {
      if (agent === identity.agentId) return 'sibling';
      if (trust.entityOfAgent(agent) !== identity.fingerprint) return 'unknown';
      if (trust.isRevokedAgent(agent)) return 'revoked';
      return trust.isTrustedAgent(agent) ? 'sibling' : 'unknown';
    };
    this.replica = new Replica({
      store: this.store,
      self: identity.agentId,
      entity: identity.fingerprint,
      key: agentKeysFromIdentity(identity).signPrivate,
      authorStatus: status,
      now: o.now,
      maxSkewMs: o.maxSkewMs,
    });
    this.engine = new SyncEngine({
      transport: o.transport,
      replica: this.replica,
      sink: {
        applied: async (t) => {
          await this.bridge.applied(t);
          await this.trustBridge.applied(t);
        },
        missingBlobs: () => this.bridge.missingBlobs(),
        readBlob: (h) => this.bridge.readBlob(h),
        blobArrived: (h, b) => this.bridge.blobArrived(h, b),
        // Re-wrapped for the asking sibling (wrap.ts): a device the sender did not know reads it with its own key.
        readSealed: async (h, to) => this.sealed?.read(h, this.wrapKeyOf(to)),
        openSealed: async (h, s) => this.sealed?.open(h, s),
      },
      isSibling: (agent) => agent !== identity.agentId && status(agent) === 'sibling',
      onRefused: (r) => this.store.recordRefusal(r.author ?? '', r.seq, r.reason, r.via, Date.now()),
      log: o.log,
    });
    this.bridge = new MailboxBridge({
      mail: o.mail,
      sync: this.store,
      record: (ops, alsoWrite) => this.engine.local(ops, alsoWrite),
      recordInTransaction: (ops, alsoWrite) => this.engine.localInTransaction(ops, alsoWrite),
      log: o.log,
    });
    this.sealed =
      o.codec &&
      new SealedForms({
        store: this.store,
        codec: o.codec,
        self: identity.fingerprint,
        sender: (fpr) => {
          const e = trust.entity(fpr);
          return { email: e?.email, name: e?.name, keyKnown: e?.publicKey !== undefined };
        },
        readBlob: (h) => this.bridge.readBlob(h),
        own: {
          publicKey: identity.onion.publicKey,
          privateKey: rawX25519(identity.onion.privateKey, 'private'),
        },
        // Only on the device that holds it: re-wraps mail sealed to the entity key alone (7.8).
        ...(identity.entityKey === undefined ? {} : { entityKey: identity.entityKey }),
      });
    this.trustBridge = new TrustBridge({
      trust,
      self: identity.fingerprint,
      registers: this.store,
      record: (ops) => this.engine.local(ops),
      revocationOp: (agent, statement) => this.replica.revocationOp(agent, statement),
      log: o.log,
    });
  }

  /** How much of the siblings' history this agent holds (`kith agent history`). */
  history(): HistoryProgress {
    return historyProgress(this.engine, () => ({
      held: this.store.entryCount(),
      missing: this.bridge.missingBlobs().length,
    }));
  }

  /** A sibling's wrap key (its certificate's onion key) if it is certified, valid and not revoked. */
  private wrapKeyOf(agent: AgentId): AgentWrapKey | undefined {
    const record = this.o.trust.agentsOf(this.o.identity.fingerprint).filter((a) => a.agentId === agent);
    return wrapKeysOf(record, Date.now())[0];
  }

  /** Siblings of this entity other than this agent, certified and not revoked. */
  siblings(): AgentId[] {
    return this.o.trust
      .certifiedAgents(this.o.identity.fingerprint)
      .map((a) => a.agentId)
      .filter((a) => a !== this.o.identity.agentId);
  }

  async start(): Promise<void> {
    await this.bridge.start();
    this.trustBridge.start();
    this.engine.start();
    const redial = () => {
      const linked = new Set(this.o.transport.neighbours());
      const siblings = this.siblings();
      if (siblings.length > 0 && !siblings.some((a) => linked.has(a))) {
        this.o
          .dialHints?.()
          .catch((err: Error) => this.o.log.debug({ err: err.message }, 'no sibling at the hints'));
      }
      for (const agent of siblings) {
        if (!linked.has(agent)) {
          this.o
            .connect(agent)
            .catch((err: Error) => this.o.log.debug({ agent, err: err.message }, 'sibling not reachable'));
        }
      }
      this.engine.requestMissing();
      this.engine.antiEntropy();
    };
    redial();
    this.timer = setInterval(redial, SIBLING_REDIAL_MS);
    // A device coming back links its relay or a friend first, and only then can it reach a sibling
    // behind a NAT (through that relay): redial the siblings at that moment, not up to 30 s later.
    this.o.transport.onLinkChange((peer, up) => {
      if (!up || this.timer === undefined || this.linkRedial) return;
      const siblings = this.siblings();
      if (siblings.includes(peer)) return;
      const linked = new Set(this.o.transport.neighbours());
      if (siblings.some((a) => linked.has(a))) return;
      this.linkRedial = true;
      queueMicrotask(() => {
        this.linkRedial = false;
        redial();
      });
    });
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.engine.stop();
    await this.trustBridge.stop();
    await this.bridge.stop();
  }
}

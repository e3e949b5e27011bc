import { createHash } from 'node:crypto';
import type { Logger } from '../../common/logger.ts';
import { hashFile } from '../payload/source.ts';
import { silentLogger } from '../../common/logger.ts';
import type { AgentId, Fingerprint } from '../../common/ids.ts';
import { generateAgentKeys, type AgentKeys } from '../onion/keys.ts';
import { plainCodec, type PayloadCodec } from '../payload/codec.ts';
import type { DiscoveryOptions } from '../routing/discovery.ts';
import { DeliveryEngine, type DeliveryOptions, type InboundDelivery } from '../delivery/engine.ts';
import { MemoryDeliveryStore, type DeliveryStore } from '../delivery/store.ts';
import { MemoryNetwork, type MemoryTransport } from './memory-transport.ts';
import { SimTrust, SimWorld } from './trust.ts';
import type { Edge } from './graphs.ts';

/** One simulated agent: real engine, in-memory transport, store and trust. */
export interface SimAgent {
  keys: AgentKeys;
  entity: Fingerprint;
  transport: MemoryTransport;
  trust: SimTrust;
  store: DeliveryStore;
  engine: DeliveryEngine;
  /** Messages its sink received, in order, with the SHA-256 of their payload. */
  inbox: (InboundDelivery & { sha256: string })[];
}

export interface SimOptions {
  delivery?: Partial<DeliveryOptions>;
  discovery?: Partial<DiscoveryOptions>;
  /** Ends discovery rings when the network is idle instead of on a timer (fast, deterministic). */
  quiesce?: boolean;
  /** Per-agent overrides (a store, a logger, a codec) by index. */
  customize?: (index: number) =>
    | {
        store?: DeliveryStore;
        logger?: Logger;
        codec?: PayloadCodec;
        keys?: AgentKeys;
        fingerprint?: Fingerprint;
        /** What dials a neighbour (the node's links.connect); e.g. re-linking in the MemoryNetwork. */
        connect?: (agent: AgentId) => Promise<void>;
        /** Runs before the agent's own sink keeps a message; a throw is a sink failure (a full disk). */
        beforeReceive?: (message: InboundDelivery) => void | Promise<void>;
      }
    | undefined;
}

export const SIM_DELIVERY: DeliveryOptions = {
  stallTimeoutMs: 2_000,
  maxAgeMs: 3_600_000,
  hopMemoryMs: 3_600_000,
  maxHoldMs: 3_600_000,
  maxHeldBytes: 64 * 1024 * 1024,
  complaintThreshold: 3,
};

export const SIM_DISCOVERY: DiscoveryOptions = {
  maxHops: 7,
  perNeighbourPerMinute: 600,
  cacheMs: 3_600_000,
  timeoutMs: 2_000,
  graceMs: 50,
};

/** A simulated network: agents on a trust graph, each a full DeliveryEngine over the MemoryNetwork. */
export class Simulation {
  readonly network = new MemoryNetwork();
  readonly world = new SimWorld();
  readonly agents: SimAgent[] = [];

  constructor(private readonly options: SimOptions = {}) {}

  /** Adds `n` agents, each its own entity, not yet linked. */
  addAgents(n: number): SimAgent[] {
    const added: SimAgent[] = [];
    for (let i = 0; i < n; i++) {
      const index = this.agents.length;
      const custom = this.options.customize?.(index) ?? {};
      const keys = custom.keys ?? generateAgentKeys();
      const entity = this.world.addEntity([keys], custom.fingerprint);
      const transport = this.network.add(keys.id);
      const trust = new SimTrust(this.world, entity, keys);
      const store = custom.store ?? new MemoryDeliveryStore();
      const inbox: SimAgent['inbox'] = [];
      const engine = new DeliveryEngine({
        transport,
        keys,
        trust,
        store,
        codec: custom.codec ?? plainCodec(entity),
        sink: {
          receive: async (m) => {
            await custom.beforeReceive?.(m);
            const sha256 = m.file
              ? await hashFile(m.file)
              : createHash('sha256')
                  .update(m.data ?? '')
                  .digest('hex');
            inbox.push({ ...m, sha256 });
          },
        },
        logger: custom.logger ?? silentLogger(),
        connect: custom.connect,
        delivery: { ...SIM_DELIVERY, ...this.options.delivery },
        discovery: {
          ...SIM_DISCOVERY,
          ...this.options.discovery,
          quiesce: this.options.quiesce ? () => this.network.idle() : undefined,
        },
      });
      const agent = { keys, entity, transport, trust, store, engine, inbox };
      this.agents.push(agent);
      added.push(agent);
    }
    return added;
  }

  /** Two agents trust each other and link. */
  connect(a: SimAgent, b: SimAgent): void {
    a.trust.trust(b.keys.id, b.entity);
    b.trust.trust(a.keys.id, a.entity);
    this.network.link(a.keys.id, b.keys.id);
  }

  /** Links agents along a graph's edges (indexes into this.agents). */
  connectEdges(edges: readonly Edge[]): void {
    for (const [a, b] of edges) this.connect(this.agents[a], this.agents[b]);
  }

  async start(): Promise<void> {
    for (const a of this.agents) await a.engine.start();
  }

  async stop(): Promise<void> {
    for (const a of this.agents) await a.engine.stop();
  }
}

// Devices of one entity in memory, each a replica and a sync engine on a MemoryNetwork link: how
// changes reach a device from linked siblings (test/roaming bad-input and revocation).
import { generateAgentKeys } from '../../agent/onion/keys.ts';
import { MemoryNetwork } from '../../agent/sim/memory-transport.ts';
import { SyncEngine } from '../../agent/sync/engine.ts';
import { snapshot } from '../../agent/sync/model.ts';
import { MemoryReplicaStore, Replica } from '../../agent/sync/replica.ts';
import type { AgentId } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import { ENTITY } from './replicas.ts';

export interface Device {
  id: AgentId;
  engine: SyncEngine;
  replica: Replica;
  store: MemoryReplicaStore;
  transport: ReturnType<MemoryNetwork['add']>;
  /** Its Ed25519 signing key (to make a second change under a number it used). */
  key: ReturnType<typeof generateAgentKeys>['signPrivate'];
  /** Agents this device's trust store holds revoked (the replica also reads revocation ops). */
  revoked: Set<string>;
  refusals: { author?: string; seq?: number; reason: string; via: AgentId }[];
  clock: { now: number };
  eids(): string[];
}

/** `count` devices of one entity, siblings of each other, none linked yet; each engine started. */
export function devices(count: number): { net: MemoryNetwork; all: Device[] } {
  const net = new MemoryNetwork();
  const keys = Array.from({ length: count }, () => generateAgentKeys());
  const siblings = new Set<string>(keys.map((k) => k.id));
  const all = keys.map((k): Device => {
    const store = new MemoryReplicaStore();
    const revoked = new Set<string>();
    const clock = { now: 1_000_000 };
    const refusals: Device['refusals'] = [];
    const replica = new Replica({
      store,
      self: k.id,
      entity: ENTITY,
      key: k.signPrivate,
      authorStatus: (a) => (revoked.has(a) ? 'revoked' : siblings.has(a) ? 'sibling' : 'unknown'),
      now: () => clock.now,
    });
    const transport = net.add(k.id);
    const engine = new SyncEngine({
      transport,
      replica,
      sink: {
        applied: async () => undefined,
        missingBlobs: () => [],
        readBlob: async () => undefined,
        blobArrived: async () => undefined,
      },
      isSibling: (a) => siblings.has(a) && a !== k.id && !revoked.has(a),
      onRefused: (r) => refusals.push(r),
      log: silentLogger(),
    });
    engine.start();
    const eids = () =>
      snapshot(store)
        .entries.map((e) => e.eid)
        .sort();
    return {
      id: k.id,
      engine,
      replica,
      store,
      transport,
      key: k.signPrivate,
      revoked,
      refusals,
      clock,
      eids,
    };
  });
  return { net, all };
}

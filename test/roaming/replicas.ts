import type { KeyObject } from 'node:crypto';
import type { AgentId } from '../../common/ids.ts';
import { generateAgentKeys } from '../../agent/onion/keys.ts';
import { Replica, MemoryReplicaStore } from '../../agent/sync/replica.ts';
import { entryView, liveFolders, snapshot, type Op } from '../../agent/sync/model.ts';

export const ENTITY = 'A'.repeat(40);

/** A replica in memory, its store, and a way to exchange changes with another. */
export interface TestReplica {
  id: AgentId;
  replica: Replica;
  store: MemoryReplicaStore;
  /** Its Ed25519 signing key. */
  key: KeyObject;
  do(ops: Op[]): void;
}

/** `count` replicas of one entity, all siblings of each other; `now` is shared. */
export function replicas(count: number, now: () => number = () => 1_000_000): TestReplica[] {
  const keys = Array.from({ length: count }, () => generateAgentKeys());
  const ids = new Set<string>(keys.map((k) => k.id));
  return keys.map((k) => {
    const store = new MemoryReplicaStore();
    const replica = new Replica({
      store,
      self: k.id,
      entity: ENTITY,
      key: k.signPrivate,
      authorStatus: (a) => (ids.has(a) ? 'sibling' : 'unknown'),
      now,
    });
    return { id: k.id, replica, store, key: k.signPrivate, do: (ops) => void replica.local(ops) };
  });
}

/** Sends `to` what it lacks from `from` (all of it, in log order); returns how many applied. */
export function exchange(from: TestReplica, to: TestReplica): number {
  let applied = 0;
  for (const change of from.replica.changesFor(to.replica.versionVector(), Number.MAX_SAFE_INTEGER)) {
    if (to.replica.receive(change).result === 'applied') applied++;
  }
  return applied;
}

/** Exchanges between every pair until nothing moves. */
export function syncAll(all: TestReplica[]): void {
  for (let moved = 1; moved > 0;) {
    moved = 0;
    for (const a of all) for (const b of all) if (a !== b) moved += exchange(a, b);
  }
}

export const view = (r: TestReplica) => snapshot(r.store);

/** The visible entry ids of a replica in a mailbox. */
export function entriesIn(r: TestReplica, mailbox: string): string[] {
  return view(r)
    .entries.filter((e) => e.mailbox === mailbox)
    .map((e) => e.eid);
}

export function entry(r: TestReplica, eid: string) {
  return entryView(r.store, eid, liveFolders(r.store));
}

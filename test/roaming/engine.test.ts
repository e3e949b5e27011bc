import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { generateAgentKeys } from '../../agent/onion/keys.ts';
import { MemoryNetwork } from '../../agent/sim/memory-transport.ts';
import { SyncEngine, type SyncSink } from '../../agent/sync/engine.ts';
import { encodeSync } from '../../agent/sync/frames.ts';
import { snapshot } from '../../agent/sync/model.ts';
import { MemoryReplicaStore, Replica } from '../../agent/sync/replica.ts';
import type { AgentId } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import { ENTITY } from './replicas.ts';

/** A device: replica, engine over the memory network, and a message store keyed by hash. */
interface Device {
  id: AgentId;
  engine: SyncEngine;
  store: MemoryReplicaStore;
  blobs: Map<string, Buffer>;
  transport: ReturnType<MemoryNetwork['add']>;
  add(eid: string, bytes: Buffer, flags?: string[]): void;
}

function devices(count: number, opts: { chunkBytes?: number; batch?: number } = {}) {
  const net = new MemoryNetwork();
  const keys = Array.from({ length: count }, () => generateAgentKeys());
  const siblings = new Set<string>(keys.map((k) => k.id));
  const all: Device[] = keys.map((k) => {
    const store = new MemoryReplicaStore();
    const blobs = new Map<string, Buffer>();
    const replica = new Replica({
      store,
      self: k.id,
      entity: ENTITY,
      key: k.signPrivate,
      authorStatus: (a) => (siblings.has(a) ? 'sibling' : 'unknown'),
    });
    const sink: SyncSink = {
      applied: async () => undefined,
      missingBlobs: () =>
        snapshot(store)
          .entries.map((e) => e.hash)
          .filter((h) => !blobs.has(h)),
      readBlob: async (h) => blobs.get(h),
      blobArrived: async (h, b) => void blobs.set(h, b),
    };
    const transport = net.add(k.id);
    const engine = new SyncEngine({
      transport,
      replica,
      sink,
      isSibling: (a) => siblings.has(a) && a !== k.id,
      log: silentLogger(),
      ...opts,
    });
    engine.start();
    return {
      id: k.id,
      engine,
      store,
      blobs,
      transport,
      add(eid, bytes, flags = []) {
        const h = createHash('sha256').update(bytes).digest('hex');
        blobs.set(h, bytes);
        engine.local([{ t: 'add', e: eid, h, f: 'INBOX', d: 1, s: bytes.length, fl: flags }]);
      },
    };
  });
  return { net, all };
}

const view = (d: Device) => JSON.stringify(snapshot(d.store));

describe('sync engine over links: anti-entropy, push, gossip, message bytes', () => {
  it('a line A–B–C: a change on A reaches C through B (signed by A), and the bytes follow in chunks', async () => {
    const { net, all } = devices(3, { chunkBytes: 1000 });
    const [a, b, c] = all;
    net.link(a.id, b.id);
    net.link(b.id, c.id);
    const big = Buffer.alloc(25_000, 'x');
    a.add('m1', big, ['\\Seen']);
    await net.idle();
    await net.idle();
    expect(view(c)).toBe(view(a));
    expect(c.blobs.get(createHash('sha256').update(big).digest('hex'))?.equals(big)).toBe(true);
  });

  it('a device offline while others change things catches up on link-up, and its own changes go out', async () => {
    const { net, all } = devices(3, { batch: 7 });
    const [a, b, c] = all;
    net.link(a.id, b.id);
    net.link(a.id, c.id);
    net.setOnline(c.id, false);
    for (let i = 0; i < 50; i++) a.add(`m${i}`, Buffer.from(`message ${i}`));
    b.engine.local([{ t: 'flag', e: 'm1', fl: '\\Flagged', on: true }]);
    c.add('from-c', Buffer.from('written offline'));
    await net.idle();
    net.setOnline(c.id, true);
    await net.idle();
    await net.idle();
    expect(view(c)).toBe(view(a));
    expect(snapshot(c.store).entries).toHaveLength(51);
    expect(view(b)).toBe(view(a));
    expect(a.blobs.size).toBe(51);
    // Each message's bytes crossed to C once, though C asked after each of many small batches.
    expect(c.engine.counters.blobsReceived).toBe(50);
  });

  it('a link cut in the middle of a transfer: the next link-up sends the rest, nothing twice applied', async () => {
    const { net, all } = devices(2, { batch: 5 });
    const [a, b] = all;
    for (let i = 0; i < 200; i++) a.add(`m${i}`, Buffer.from(`m ${i}`));
    net.link(a.id, b.id);
    net.unlink(a.id, b.id); // frames in flight are lost
    await net.idle();
    net.link(a.id, b.id);
    await net.idle();
    await net.idle();
    expect(view(b)).toBe(view(a));
    expect(b.engine.counters.applied).toBe(200);
  });

  it('changes of 100 ops each (a mailbox recorded at start), more than one frame holds: a sibling linked afterwards gets them all', async () => {
    const { net, all } = devices(2);
    const [a, b] = all;
    // 300 changes of ~8 KB: 200 (one batch) are well past the link's 1 MiB frame bound.
    for (let i = 0; i < 300; i++) {
      a.engine.local(
        Array.from({ length: 100 }, (_, k) => ({
          t: 'flag' as const,
          e: `entry-${i}-${k}-${'x'.repeat(24)}`,
          fl: '\\Seen',
          on: true,
        })),
      );
    }
    net.link(a.id, b.id);
    await net.idle();
    expect(b.engine.counters.applied).toBe(300);
    expect(b.store.versionVector()).toEqual(a.store.versionVector());
  });

  it('sync frames from a linked agent that is not of our entity are dropped and counted; none are sent to it', async () => {
    const { net, all } = devices(1);
    const [a] = all;
    const stranger = generateAgentKeys().id;
    const t = net.add(stranger);
    const got: Uint8Array[] = [];
    t.onFrame((_, f) => void got.push(f));
    net.link(a.id, stranger);
    a.add('m1', Buffer.from('private'));
    await t.send(a.id, encodeSync({ kind: 'vv', vv: {} }));
    await t.send(a.id, Buffer.from([1, 0x20, 9, 1, 2]));
    await net.idle();
    expect(got).toEqual([]);
    expect(a.engine.counters.refused['not-sibling-link']).toBe(2);
  });

  it('a malformed frame from a sibling is dropped and counted; the link goes on working', async () => {
    const { net, all } = devices(2);
    const [a, b] = all;
    net.link(a.id, b.id);
    await net.idle();
    await a.transport.send(b.id, Buffer.from([1, 0x20, 2, 0x7b]));
    a.add('m1', Buffer.from('after the bad frame'));
    await net.idle();
    expect(b.engine.counters.refused.malformed).toBe(1);
    expect(view(b)).toBe(view(a));
  });
});

import { describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { SqliteDeliveryStore } from '../../agent/delivery/sqlite-store.ts';
import { MemoryDeliveryStore, type DeliveryStore } from '../../agent/delivery/store.ts';
import type { AgentId } from '../../common/ids.ts';
import { openDatabase } from '../../store/db.ts';
import { tempDir } from '../helpers/tmp.ts';

const C = 'agent-c' as AgentId;
const D = 'agent-d' as AgentId;

// The DeliveryStore contract: both stores behave the same (the simulator uses one, real nodes the other).
const STORES: [string, () => { store: DeliveryStore; close: () => void }][] = [
  ['memory', () => ({ store: new MemoryDeliveryStore() as DeliveryStore, close: () => undefined })],
  [
    'sqlite',
    () => {
      const dir = tempDir();
      const db = openDatabase(join(dir.path, 'kith.db'));
      return {
        store: new SqliteDeliveryStore(db) as DeliveryStore,
        close: () => {
          db.close();
          dir.remove();
        },
      };
    },
  ],
];

describe.each(STORES)('hop memory in the %s store', (_, open) => {
  it('keeps who handed each packet on, with its proof (digest and signature), until it expires', () => {
    const { store, close } = open();
    try {
      const proof = { digest: Buffer.alloc(32, 7), signature: Buffer.alloc(64, 9) };
      const relayed = {
        inId: '01'.repeat(16),
        from: C,
        proof,
        outId: '02'.repeat(16),
        to: D,
        expiresAt: 1000,
      };
      store.putHop(relayed);
      // A record kept without a proof (as rows from before proofs were kept read back).
      store.putHop({
        inId: '03'.repeat(16),
        from: C,
        proof: null,
        outId: '04'.repeat(16),
        to: D,
        expiresAt: 3000,
      });
      // At the recipient: nothing handed on, the proof still kept.
      store.putHop({ inId: '05'.repeat(16), from: D, proof, outId: null, to: null, expiresAt: 1000 });
      proof.digest.fill(0); // the store holds its own copy

      const got = store.hopByOut('02'.repeat(16));
      expect(got).toEqual({
        ...relayed,
        proof: { digest: Buffer.alloc(32, 7), signature: Buffer.alloc(64, 9) },
      });
      expect(got?.proof?.digest).toHaveLength(32);
      expect(got?.proof?.signature).toHaveLength(64);
      expect(store.hopByOut('04'.repeat(16))?.proof).toBeNull();
      expect(store.hopByOut('06'.repeat(16))).toBeUndefined();
      expect(store.hasHopIn('05'.repeat(16))).toBe(true);
      expect(store.hasHopIn('02'.repeat(16))).toBe(false); // known by its incoming id only

      // The proof lasts exactly as long as the record.
      expect(store.pruneHops(1000)).toBe(0);
      expect(store.pruneHops(2000)).toBe(2);
      expect(store.hopByOut('02'.repeat(16))).toBeUndefined();
      expect(store.hasHopIn('01'.repeat(16))).toBe(false);
      expect(store.hasHopIn('05'.repeat(16))).toBe(false);
      expect(store.hopByOut('04'.repeat(16))?.from).toBe(C);
    } finally {
      close();
    }
  });
});

describe.each(STORES)('held packets in the %s store', (_, open) => {
  it('keeps them per next hop in arrival order, in batches, with their report secret; counts bytes; drops expired', () => {
    const { store, close } = open();
    try {
      const secret = { reportKey: Buffer.alloc(32, 1), reportTag: Buffer.alloc(16, 2) };
      const seqs = [1, 2, 3].map((n) =>
        store.putHeld({
          next: D,
          frame: Buffer.alloc(100 * n, n),
          expiresAt: 1000 * n,
          report: n === 1 ? { to: C, link: 'ab'.repeat(16), secret } : undefined,
        }),
      );
      store.putHeld({ next: C, frame: Buffer.alloc(7), expiresAt: 5000 });
      expect(store.heldBytes()).toBe(600 + 7);
      const first = store.heldFor(D, 0, 2);
      expect(first.map((p) => p.seq)).toEqual(seqs.slice(0, 2));
      expect(first[0].frame.equals(Buffer.alloc(100, 1))).toBe(true);
      expect(first[0].report?.secret.reportKey.equals(secret.reportKey)).toBe(true);
      expect(first[0].report?.secret.reportTag.equals(secret.reportTag)).toBe(true);
      expect(first[1].report).toBeUndefined();
      expect(store.heldFor(D, first[1].seq, 2).map((p) => p.seq)).toEqual([seqs[2]]);
      store.deleteHeld(seqs[0]);
      expect(store.heldBytes()).toBe(500 + 7);
      expect(store.pruneHeld(2500)).toBe(1);
      expect(store.heldFor(D, 0, 10).map((p) => p.seq)).toEqual([seqs[2]]);
      expect(store.heldFor(C, 0, 10)).toHaveLength(1);
      // The index the transit queue re-creates its jobs from: no frames, arrival order, paged.
      expect(store.heldIndex(0, 10)).toEqual([
        { seq: seqs[2], next: D, expiresAt: 3000 },
        { seq: seqs[2] + 1, next: C, expiresAt: 5000 },
      ]);
      expect(store.heldIndex(seqs[2], 10).map((p) => p.next)).toEqual([C]);
      expect(store.heldIndex(0, 1)).toHaveLength(1);
      expect(store.hasHeld(seqs[2])).toBe(true);
      expect(store.hasHeld(seqs[0])).toBe(false);
    } finally {
      close();
    }
  });
});

import { afterEach, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { decodeOnion, hopDigest, linkId } from '../../agent/delivery/frames.ts';
import { verifyHopProof } from '../../agent/delivery/proof.ts';
import { DELIVERY_MIGRATIONS, SqliteDeliveryStore } from '../../agent/delivery/sqlite-store.ts';
import type { HopRecord, MemoryDeliveryStore } from '../../agent/delivery/store.ts';
import { generateAgentKeys, signWith } from '../../agent/onion/keys.ts';
import { FrameType } from '../../agent/onion/wire.ts';
import { Simulation, type SimAgent } from '../../agent/sim/sim.ts';
import type { AgentId, MessageId } from '../../common/ids.ts';
import { migrate, openDatabase, type Db } from '../../store/db.ts';
import { tempDir } from '../helpers/tmp.ts';
import { newMessageId, recordEvents } from './helpers.ts';

type HopRow = { in_id: string; out_id: string | null };

describe('hop accountability: what a hop keeps proves who handed it each packet', () => {
  let sim: Simulation | undefined;
  let db: Db | undefined;
  let dir: ReturnType<typeof tempDir> | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
    db?.close();
    db = undefined;
    dir?.remove();
    dir = undefined;
  });

  /** A line A–B–C–D; B keeps its hop memory in SQLite, the others in memory. */
  async function line(): Promise<{
    a: SimAgent;
    b: SimAgent;
    c: SimAgent;
    d: SimAgent;
    bStore: SqliteDeliveryStore;
  }> {
    dir = tempDir();
    db = openDatabase(join(dir.path, 'b.db'));
    const bStore = new SqliteDeliveryStore(db);
    sim = new Simulation({ customize: (i) => (i === 1 ? { store: bStore } : undefined) });
    const [a, b, c, d] = sim.addAgents(4);
    sim.connect(a, b);
    sim.connect(b, c);
    sim.connect(c, d);
    await sim.start();
    return { a, b, c, d, bStore };
  }

  async function deliver(a: SimAgent, d: SimAgent, text: string): Promise<MessageId> {
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    await a.engine.send({ id, to: d.entity, source: { kind: 'bytes', data: Buffer.from(text) } });
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);
    await sim!.network.idle();
    return id;
  }

  /** B's hop records of packets it handed on, beyond those already seen. */
  function newHops(bStore: SqliteDeliveryStore, seen: Set<string>): HopRecord[] {
    const rows = db!.prepare('SELECT in_id, out_id FROM delivery_hop').all() as HopRow[];
    const fresh = rows.filter((r) => r.out_id && !seen.has(r.in_id));
    for (const r of fresh) seen.add(r.in_id);
    return fresh.map((r) => bStore.hopByOut(r.out_id!)!);
  }

  test("a relay's stored proof verifies for the neighbour that handed it the packet, and for no other key", async () => {
    const { a, b, c, d, bStore } = await line();
    // What B really signed for C, to compare with what C keeps.
    const toC: Buffer[] = [];
    const send = b.transport.send.bind(b.transport);
    b.transport.send = async (to: AgentId, frame: Uint8Array) => {
      if (to === c.keys.id && frame[1] === FrameType.onion) toC.push(Buffer.from(frame));
      return send(to, frame);
    };
    await deliver(a, d, 'accountable');

    const hops = newHops(bStore, new Set());
    expect(hops.length).toBeGreaterThan(0);
    const forger = generateAgentKeys();
    for (const hop of hops) {
      expect(hop.from).toBe(a.keys.id);
      expect(hop.proof?.digest).toHaveLength(32);
      expect(hop.proof?.signature).toHaveLength(64);
      expect(verifyHopProof(hop, a.keys.signPublic)).toBe(true);
      // Any other key: another agent of the path, B itself, a stranger.
      for (const other of [b, c, d].map((x) => x.keys.signPublic).concat(forger.signPublic)) {
        expect(verifyHopProof(hop, other)).toBe(false);
      }
      // The record re-labelled as the forger's, checked with the forger's key: still not its signature.
      expect(verifyHopProof({ ...hop, from: forger.id }, forger.signPublic)).toBe(false);
      // A proof B (or anyone) made up: a valid signature over the same digest, by the wrong key.
      const madeUp = { digest: hop.proof!.digest, signature: signWith(b.keys, hop.proof!.digest) };
      expect(verifyHopProof({ ...hop, proof: madeUp }, a.keys.signPublic)).toBe(false);
      // Altered bytes, or no proof at all.
      const flipped = Buffer.from(hop.proof!.signature);
      flipped[0] ^= 1;
      expect(
        verifyHopProof({ ...hop, proof: { ...hop.proof!, signature: flipped } }, a.keys.signPublic),
      ).toBe(false);
      const otherDigest = Buffer.from(hop.proof!.digest);
      otherDigest[31] ^= 1;
      expect(
        verifyHopProof({ ...hop, proof: { ...hop.proof!, digest: otherDigest } }, a.keys.signPublic),
      ).toBe(false);
      expect(verifyHopProof({ ...hop, proof: null }, a.keys.signPublic)).toBe(false);
    }

    // C keeps exactly B's hop signature and the digest it covers (bound to C's own key).
    expect(toC.length).toBeGreaterThan(0);
    const cStore = c.store as MemoryDeliveryStore;
    for (const frame of toC) {
      const { header, body, signature } = decodeOnion(frame);
      const kept = cStore.hopsIn.get(linkId(header))!;
      expect(kept.from).toBe(b.keys.id);
      expect(kept.proof?.digest.equals(hopDigest(c.keys.signPublic, header, body))).toBe(true);
      expect(kept.proof?.signature.equals(signature)).toBe(true);
      expect(verifyHopProof(kept, b.keys.signPublic)).toBe(true);
      expect(verifyHopProof(kept, a.keys.signPublic)).toBe(false);
    }
  });

  test('a complaint is counted against a neighbour only when the hop record proves the neighbour handed it the packet', async () => {
    const { a, b, c, d, bStore } = await line();
    const rec = recordEvents(a.engine);
    const seen = new Set<string>();
    const complain = async (id: MessageId) => {
      expect(d.engine.complain(id)).toBe(true);
      await rec.waitFor((e) => e.kind === 'complained' && e.id === id);
      await sim!.network.idle();
    };

    // A proven complaint: counted, and the record it was counted on proves it.
    const first = await deliver(a, d, 'one');
    const firstHops = newHops(bStore, seen);
    await complain(first);
    expect(b.engine.complaintsAgainst(a.keys.id)).toBe(1);
    expect(c.engine.complaintsAgainst(b.keys.id)).toBe(1);
    expect(b.engine.metrics.get('complaint_unproven')).toBe(0);
    expect(firstHops.some((h) => verifyHopProof(h, a.keys.signPublic))).toBe(true);

    // B's record now holds a proof that does not verify (made up by B): not counted, passed on.
    const second = await deliver(a, d, 'two');
    for (const hop of newHops(bStore, seen)) {
      db!
        .prepare('UPDATE delivery_hop SET proof_signature = ? WHERE in_id = ?')
        .run(signWith(b.keys, hop.proof!.digest), hop.inId);
    }
    await complain(second);
    expect(b.engine.complaintsAgainst(a.keys.id)).toBe(1);
    expect(b.engine.metrics.get('complaint_unproven')).toBe(1);
    expect(c.engine.complaintsAgainst(b.keys.id)).toBe(2); // C's proof of B is intact

    // A record without a proof (as kept before delivery migration 3): not counted either.
    const third = await deliver(a, d, 'three');
    for (const hop of newHops(bStore, seen)) {
      db!
        .prepare('UPDATE delivery_hop SET proof_digest = NULL, proof_signature = NULL WHERE in_id = ?')
        .run(hop.inId);
    }
    await complain(third);
    expect(b.engine.complaintsAgainst(a.keys.id)).toBe(1);
    expect(b.engine.metrics.get('complaint_unproven')).toBe(2);
    expect(b.engine.metrics.get('complaints_relayed')).toBe(3);
  });

  test('an older database gains the proof columns; its hop records read back without a proof', () => {
    dir = tempDir();
    db = openDatabase(join(dir.path, 'old.db'));
    migrate(db, 'delivery', DELIVERY_MIGRATIONS.slice(0, 2));
    db.prepare('INSERT INTO delivery_hop VALUES (?, ?, ?, ?, ?)').run('aa', 'agent-a', 'bb', 'agent-c', 99);
    const store = new SqliteDeliveryStore(db);
    expect(db.prepare("SELECT version FROM schema_migrations WHERE module = 'delivery'").get()).toEqual({
      version: DELIVERY_MIGRATIONS.length, // every later migration applied too
    });
    expect(store.hopByOut('bb')).toEqual({
      inId: 'aa',
      from: 'agent-a',
      proof: null,
      outId: 'bb',
      to: 'agent-c',
      expiresAt: 99,
    });
  });
});

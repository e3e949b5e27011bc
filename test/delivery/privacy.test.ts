import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as openpgp from 'openpgp';
import { pino } from 'pino';
import type { AgentId, Fingerprint } from '../../common/ids.ts';
import { FrameType } from '../../agent/onion/wire.ts';
import { onward } from '../../agent/routing/discovery.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { createIdentity, type Identity } from '../../agent/identity/identity.ts';
import { agentKeysFromIdentity } from '../../agent/onion/keys.ts';
import { openpgpCodec } from '../../agent/payload/codec.ts';
import { SqliteDeliveryStore } from '../../agent/delivery/sqlite-store.ts';
import { verifyHopProof } from '../../agent/delivery/proof.ts';
import { Simulation, type SimAgent } from '../../agent/sim/sim.ts';
import { newMessageId, recordEvents } from './helpers.ts';

describe('end to end with OpenPGP entities; what intermediate hops keep', () => {
  let dir: string;
  let sim: Simulation | undefined;
  const dbs: Db[] = [];
  afterEach(async () => {
    await sim?.stop();
    for (const db of dbs.splice(0)) db.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('D gets the RFC 5322 bytes verified from A; B and C stored and logged no plaintext and no identity beyond their neighbours', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kith-privacy-'));
    const ids: Identity[] = [];
    for (const name of ['alice', 'dave']) {
      const db = openDatabase(join(dir, `${name}.db`));
      dbs.push(db);
      ids.push(await createIdentity(db, { name, email: `${name}@example.org`, passphrase: 'correct horse' }));
    }
    const [alice, dave] = ids;
    const keys = new Map<Fingerprint, openpgp.PublicKey>(ids.map((i) => [i.fingerprint, i.entityPublic]));
    const lookup = async (f: Fingerprint) => keys.get(f);
    const logs: Record<number, string[]> = { 1: [], 2: [] };
    const relayDbFiles: Record<number, string> = {};
    const relayDbs: Record<number, Db> = {};
    sim = new Simulation({
      customize: (i) => {
        if (i === 0 || i === 3) {
          const id = i === 0 ? alice : dave;
          return {
            keys: agentKeysFromIdentity(id),
            fingerprint: id.fingerprint,
            codec: openpgpCodec({ entityKey: id.entityKey, publicKey: lookup }),
          };
        }
        relayDbFiles[i] = join(dir, `relay${i}.db`);
        const db = openDatabase(relayDbFiles[i]);
        dbs.push(db);
        relayDbs[i] = db;
        const sink = new Writable({
          write(chunk, _enc, done) {
            logs[i].push(String(chunk));
            done();
          },
        });
        return { store: new SqliteDeliveryStore(db), logger: pino({ level: 'trace' }, sink) };
      },
    });
    const [a, b, c, d] = sim.addAgents(4);
    sim.connect(a, b);
    sim.connect(b, c);
    sim.connect(c, d);
    await sim.start();
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    const mail = Buffer.from(
      'From: alice@example.org\r\nTo: dave@example.org\r\nSubject: secret-plan-42\r\n\r\nmeet at noon, zebra-crossing\r\n',
    );
    await a.engine.send({ id, to: dave.fingerprint, source: { kind: 'bytes', data: mail } });
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);

    expect(d.inbox).toHaveLength(1);
    expect(d.inbox[0].data?.equals(mail)).toBe(true);
    expect(d.inbox[0].sender).toBe(alice.fingerprint);
    expect(d.inbox[0].verified).toBe(true);

    const secrets = ['secret-plan-42', 'zebra-crossing', 'alice@example.org', 'dave@example.org'];
    // Text forms, and the binary forms a store could hold them in (raw keys, fingerprint and id
    // bytes, and those in base64), searched as latin1 so that every byte sequence is a string.
    const binary = (hex: string) => {
      const raw = Buffer.from(hex, 'hex');
      return [raw.toString('latin1'), raw.toString('base64'), raw.toString('base64url')];
    };
    const raw = (key: Buffer) => [key.toString('latin1'), key.toString('base64'), key.toString('base64url')];
    const entity = (x: typeof a) => [x.entity, x.entity.toLowerCase(), ...binary(x.entity)];
    const who = (x: typeof a) => [
      x.keys.id,
      ...entity(x),
      ...raw(x.keys.signPublic),
      ...raw(x.keys.onionPublic),
    ];
    const forbidden: Record<number, string[]> = {
      1: [...secrets, ...who(d), ...entity(a), id, ...binary(id)], // B knows A (neighbour) and C only
      2: [...secrets, ...who(a), ...entity(d), id, ...binary(id)], // C knows B and D only
    };
    for (const i of [1, 2]) {
      const files = [relayDbFiles[i], `${relayDbFiles[i]}-wal`].filter((f) => existsSync(f));
      const stored = (await Promise.all(files.map((f) => readFile(f))))
        .map((x) => x.toString('latin1'))
        .join('');
      const logged = logs[i].join('');
      expect(logged.length).toBeGreaterThan(0); // it did log (at trace level), just nothing it must not
      expect(stored).toContain(i === 1 ? a.keys.id : b.keys.id); // it remembers its predecessor
      for (const s of forbidden[i]) {
        expect(s.length).toBeGreaterThanOrEqual(14); // long enough not to match by chance
        expect({ hop: i, where: 'store', s, found: stored.includes(s) }).toEqual({
          hop: i,
          where: 'store',
          s,
          found: false,
        });
        expect({ hop: i, where: 'logs', s, found: logged.includes(s) }).toEqual({
          hop: i,
          where: 'logs',
          s,
          found: false,
        });
      }
      // Hop memory holds these columns only. The proof is the predecessor's signature (64) and the
      // digest it covers (32): a hash of a layer the hop could not read, over the hop's own key;
      // it names no one beyond the predecessor, who can be checked against it.
      const rows = relayDbs[i].prepare('SELECT * FROM delivery_hop').all() as Record<string, unknown>[];
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows) {
        expect(Object.keys(row).sort()).toEqual([
          'expires_at',
          'from_agent',
          'in_id',
          'out_id',
          'proof_digest',
          'proof_signature',
          'to_agent',
        ]);
        const proof = { digest: row.proof_digest as Buffer, signature: row.proof_signature as Buffer };
        expect([proof.digest.length, proof.signature.length]).toEqual([32, 64]);
        const predecessor = i === 1 ? a : b;
        expect(row.from_agent).toBe(predecessor.keys.id);
        expect(verifyHopProof({ from: predecessor.keys.id, proof }, predecessor.keys.signPublic)).toBe(true);
      }
    }
  });

  test('discovery: a neighbour cannot tell the asker from a relay by the request it receives', async () => {
    // The rule itself: what the asker sends (its question taken as received at the top with one
    // more hop) is what a relay sends for a request that reached it at the top.
    const ns = ['n1', 'n2', 'n3'] as AgentId[];
    const seq = (xs: number[]) => () => xs.shift() ?? 0.99;
    expect(onward(5, 0, ns, seq([0.4, 0.5]))).toEqual([
      { to: 'n1', ttl: 4, travelled: 1 },
      { to: 'n2', ttl: 5, travelled: 0 },
      { to: 'n3', ttl: 4, travelled: 1 },
    ]);
    expect(onward(5, 0, ns, seq([0.6]))).toEqual(ns.map((to) => ({ to, ttl: 4, travelled: 1 })));
    expect(onward(5, 2, ns, seq([0]))).toEqual(ns.map((to) => ({ to, ttl: 4, travelled: 3 })));
    expect(onward(1, 2, ns)).toEqual([]);
    expect(onward(1, 0, ns, seq([0]))).toEqual([]); // no top without a hop left

    // On a network: A asks for an entity nobody knows (every ring runs), many times; B1..B3 relay
    // to C1..C3. A deterministic generator stands in for Math.random.
    let state = 42;
    const random = () => {
      state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
      return state / 2 ** 31;
    };
    sim = new Simulation({ quiesce: true, discovery: { random, perNeighbourPerMinute: 100_000 } });
    const [asker, ...rest] = sim.addAgents(7);
    const relays = rest.slice(0, 3);
    relays.forEach((b, k) => {
      sim!.connect(asker, b);
      sim!.connect(b, rest[3 + k]);
    });
    await sim.start();
    const sent: { from: SimAgent; to: AgentId; id: string; ttl: number; travelled: number }[] = [];
    for (const x of [asker, ...rest]) {
      const send = x.transport.send.bind(x.transport);
      x.transport.send = async (to: AgentId, frame: Uint8Array) => {
        if (frame[1] === FrameType.discoverRequest) {
          const f = Buffer.from(frame);
          sent.push({ from: x, to, id: f.subarray(2, 18).toString('hex'), ttl: f[38], travelled: f[39] });
        }
        return send(to, frame);
      };
    }
    for (let k = 0; k < 40; k++) {
      const unknown = randomBytes(20).toString('hex').toUpperCase() as Fingerprint;
      expect(await asker.engine.discovery.find(unknown)).toEqual([]);
    }
    const pair = (f: { ttl: number; travelled: number }) => `${f.ttl}/${f.travelled}`;
    const fromAsker = sent.filter((f) => f.from === asker);
    // What relays send for requests that reached them at the top (travelled 0).
    const topAtRelay = new Set(
      sent
        .filter((f) => relays.includes(f.from))
        .filter((f) => sent.some((g) => g.id === f.id && g.to === f.from.keys.id && g.travelled === 0))
        .map(pair),
    );
    expect(fromAsker.length).toBeGreaterThan(0);
    expect(new Set(fromAsker.map(pair))).toEqual(topAtRelay);
    // Both kinds reach A's neighbours from A, and relays send "travelled 0" too.
    expect(fromAsker.some((f) => f.travelled === 0)).toBe(true);
    expect(fromAsker.some((f) => f.travelled === 1)).toBe(true);
    expect(sent.some((f) => relays.includes(f.from) && f.travelled === 0)).toBe(true);
    // The top goes to one neighbour at most per question; the hop limit still bounds the reach.
    for (const id of new Set(fromAsker.map((f) => f.id))) {
      expect(fromAsker.filter((f) => f.id === id && f.travelled === 0).length).toBeLessThanOrEqual(1);
    }
    expect(Math.max(...sent.map((f) => f.ttl))).toBeLessThanOrEqual(8);
  });
});

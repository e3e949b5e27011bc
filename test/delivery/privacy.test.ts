import { afterEach, describe, expect, test } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as openpgp from 'openpgp';
import { pino } from 'pino';
import type { Fingerprint } from '../../common/ids.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { createIdentity, type Identity } from '../../agent/identity/identity.ts';
import { agentKeysFromIdentity } from '../../agent/onion/keys.ts';
import { openpgpCodec } from '../../agent/payload/codec.ts';
import { SqliteDeliveryStore } from '../../agent/delivery/sqlite-store.ts';
import { Simulation } from '../../agent/sim/sim.ts';
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
    const keys = new Map<Fingerprint, openpgp.PublicKey>(
      ids.map((i) => [i.fingerprint, i.entityKey.toPublic()]),
    );
    const lookup = async (f: Fingerprint) => keys.get(f);
    const logs: Record<number, string[]> = { 1: [], 2: [] };
    const relayDbFiles: Record<number, string> = {};
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
    const who = (x: typeof a) => [x.keys.id, x.entity, x.entity.toLowerCase()];
    const forbidden: Record<number, string[]> = {
      1: [...secrets, ...who(d), a.entity, a.entity.toLowerCase(), id], // B knows A (neighbour) and C only
      2: [...secrets, ...who(a), d.entity, d.entity.toLowerCase(), id], // C knows B and D only
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
    }
  });
});

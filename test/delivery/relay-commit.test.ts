import { afterEach, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeOnion, linkId } from '../../agent/delivery/frames.ts';
import { SqliteDeliveryStore } from '../../agent/delivery/sqlite-store.ts';
import { FrameType } from '../../agent/onion/wire.ts';
import { Simulation, type SimAgent } from '../../agent/sim/sim.ts';
import type { AgentId } from '../../common/ids.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { groupCommitOf } from '../../store/group-commit.ts';
import { tempDir } from '../helpers/tmp.ts';
import { newMessageId, recordEvents } from './helpers.ts';

// A relay with its SQLite store commits hop records in groups (agent/delivery/relay.ts
// commitThenHandOn): what must hold is that no packet goes on before its own record is durable.
describe("a relay's hop records: group-committed, each durable before its packet goes on", () => {
  let sim: Simulation | undefined;
  let db: Db | undefined;
  let reader: Db | undefined;
  let dir: ReturnType<typeof tempDir> | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
    reader?.close();
    reader = undefined;
    db?.close();
    db = undefined;
    dir?.remove();
    dir = undefined;
  });

  /** A line A–B–C–D; B keeps its hop memory in SQLite. `onToC` sees every onion frame B sends C. */
  async function line(onToC: (frame: Buffer) => void): Promise<{ a: SimAgent; b: SimAgent; d: SimAgent }> {
    dir = tempDir();
    const file = join(dir.path, 'b.db');
    db = openDatabase(file);
    const bStore = new SqliteDeliveryStore(db);
    // A second connection sees only what B's connection committed (WAL): the durable state.
    reader = new Database(file, { readonly: true });
    sim = new Simulation({ customize: (i) => (i === 1 ? { store: bStore } : undefined) });
    const [a, b, c, d] = sim.addAgents(4);
    sim.connect(a, b);
    sim.connect(b, c);
    sim.connect(c, d);
    await sim.start();
    const send = b.transport.send.bind(b.transport);
    b.transport.send = async (to: AgentId, frame: Uint8Array) => {
      if (to === c.keys.id && frame[1] === FrameType.onion) onToC(Buffer.from(frame));
      return send(to, frame);
    };
    return { a, b, d };
  }

  test('30 messages at once: every packet B hands on was committed first, and packets shared commits', async () => {
    const committedWhenSent: boolean[] = [];
    const { a, d } = await line((frame) => {
      const outId = linkId(decodeOnion(frame).header);
      const row = reader!.prepare('SELECT 1 FROM delivery_hop WHERE out_id = ?').get(outId);
      committedWhenSent.push(row !== undefined);
    });
    const before = { ...groupCommitOf(db!).stats };
    const rec = recordEvents(a.engine);
    const ids = Array.from({ length: 30 }, () => newMessageId());
    await Promise.all(
      ids.map((id) =>
        a.engine.send({ id, to: d.entity, source: { kind: 'bytes', data: Buffer.from(`message ${id}`) } }),
      ),
    );
    for (const id of ids) await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);
    await sim!.network.idle();

    expect(committedWhenSent.length).toBeGreaterThanOrEqual(30);
    expect(committedWhenSent.every(Boolean)).toBe(true);
    const writes = groupCommitOf(db!).stats.writes - before.writes;
    const commits = groupCommitOf(db!).stats.commits - before.commits;
    expect(writes).toBe(committedWhenSent.length);
    expect(commits).toBeLessThan(writes);
    console.info(`relay B: ${writes} hop records in ${commits} commits`);
  });

  test('a hop record that cannot be stored: the packet does not go on; the sender re-sends it later', async () => {
    let sentToC = 0;
    const { a, b, d } = await line(() => sentToC++);
    // Every insert into B's hop memory fails, as on a full disk.
    db!.exec(
      `CREATE TRIGGER refuse BEFORE INSERT ON delivery_hop BEGIN SELECT RAISE(ABORT, 'disk full'); END`,
    );
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    await a.engine.send({ id, to: d.entity, source: { kind: 'bytes', data: Buffer.from('kept back') } });
    // No "forwarded" from B, so A's stall timer fires; meanwhile nothing went on to C.
    await rec.waitFor((e) => e.kind === 'stalled' && e.id === id);
    expect(b.engine.metrics.get('rejected_hop_not_stored')).toBeGreaterThanOrEqual(1);
    expect(sentToC).toBe(0);
    expect(rec.events.some((e) => e.kind === 'progress')).toBe(false);

    db!.exec('DROP TRIGGER refuse');
    // The sender's stall timer sends a fresh packet, which B now stores and hands on.
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);
    expect(sentToC).toBeGreaterThan(0);
  });
});

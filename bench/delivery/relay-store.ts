// A relay's forwarding rate with its real SQLite store (hop records committed before each packet
// goes on), in one process over the in-memory transport: m → b (the relay, SQLite in a temp dir)
// → c → d. Baseline in the same run: the same relay with the in-memory store (no commit at all),
// so the ratio is what durability costs the relay.
// A third run, same process: the SQLite store with one commit per packet (its putHopDurable hidden,
// as the relay worked before the group commit), so both designs are compared in the same run.
// Run: node --import tsx bench/delivery/relay-store.ts [--packets 2000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteDeliveryStore } from '../../agent/delivery/sqlite-store.ts';
import { Simulation } from '../../agent/sim/sim.ts';
import { openDatabase } from '../../store/db.ts';
import { manifestPacket } from '../lib/packets.ts';
import { header, row } from '../lib/stats.ts';

const i = process.argv.indexOf('--packets');
const PACKETS = i >= 0 ? Number(process.argv[i + 1]) : 2000;

/** Packets per second through relay b, from the first send until b forwarded them all. */
async function measure(store: 'memory' | 'sqlite' | 'sqlite-per-packet'): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kith-bench-relay-'));
  const db = store !== 'memory' ? openDatabase(join(dir, 'relay.db')) : undefined;
  const relayStore = (): SqliteDeliveryStore => {
    const s = new SqliteDeliveryStore(db!);
    if (store === 'sqlite-per-packet') Object.defineProperty(s, 'putHopDurable', { value: undefined });
    return s;
  };
  const sim = new Simulation({
    delivery: { stallTimeoutMs: 60_000, spoolDir: dir },
    customize: (k) => (k === 1 && db ? { store: relayStore() } : {}),
  });
  try {
    const [, b, c, d, m] = sim.addAgents(5);
    sim.connect(b!, c!);
    sim.connect(c!, d!);
    sim.connect(m!, b!);
    await sim.start();
    const toD = (await m!.engine.discovery.find(d!.entity))[0]!.entries;
    const packets = Array.from({ length: PACKETS }, () => manifestPacket(m!.keys, toD));
    const before = b!.engine.metrics.get('forwarded');
    const t0 = performance.now();
    await Promise.all(packets.map((p) => m!.transport.send(b!.keys.id, p)));
    await sim.network.idle();
    const ms = performance.now() - t0;
    const forwarded = b!.engine.metrics.get('forwarded') - before;
    if (forwarded !== PACKETS) throw new Error(`relay forwarded ${forwarded} of ${PACKETS}`);
    return PACKETS / (ms / 1000);
  } finally {
    await sim.stop();
    db?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const memory = await measure('memory');
const perPacket = await measure('sqlite-per-packet');
const durable = await measure('sqlite');
console.log(
  header(
    `A relay forwarding ${PACKETS} packets (in-memory transport, one process): SQLite store vs in-memory store`,
  ),
);
console.log(row('packets/s, group commit vs in-memory store', durable, memory, '/s'));
console.log(row('packets/s, one commit per packet vs in-memory', perPacket, memory, '/s'));
console.log(row('packets/s, group commit vs one commit per packet', durable, perPacket, '/s'));

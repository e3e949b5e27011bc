import { afterEach, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Simulation } from '../../agent/sim/sim.ts';
import { newMessageId, recordEvents } from '../delivery/helpers.ts';

// 256 MiB keeps the suite fast (about 10 s); a 1 GiB run belongs in a bench script (not written yet).
const SIZE = 256 * 1024 * 1024;
const RSS_CEILING = 160 * 1024 * 1024;
/** Only a hang detector: on a quiet machine this takes ~10 s, on a loaded 2-core CI far longer. */
const HANG_MS = 600_000;

async function writePayload(path: string): Promise<string> {
  const block = randomBytes(1024 * 1024);
  const hash = createHash('sha256');
  const handle = await open(path, 'w');
  try {
    for (let i = 0; i < SIZE / block.length; i++) {
      block.writeUInt32BE(i, 0); // every MiB differs, so a misplaced chunk changes the hash
      hash.update(block);
      await handle.write(block);
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

describe('large payloads', () => {
  let dir: string;
  let sim: Simulation | undefined;
  afterEach(async () => {
    await sim?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test(
    '256 MiB crosses three hops intact while memory stays bounded',
    async () => {
      dir = await mkdtemp(join(tmpdir(), 'kith-large-'));
      const file = join(dir, 'payload.bin');
      const sha = await writePayload(file);
      sim = new Simulation({ delivery: { spoolDir: dir, stallTimeoutMs: 10_000 } });
      const [a, b, c, d] = sim.addAgents(4);
      sim.connect(a, b);
      sim.connect(b, c);
      sim.connect(c, d);
      await sim.start();
      global.gc?.();
      const base = process.memoryUsage().rss;
      let peak = base;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
      const rec = recordEvents(a.engine);
      const id = newMessageId();
      const started = Date.now();
      try {
        await a.engine.send({ id, to: d.entity, source: { kind: 'file', path: file } });
        await rec.waitFor((e) => e.kind === 'delivered' && e.id === id, HANG_MS);
      } finally {
        clearInterval(sampler);
      }
      const seconds = (Date.now() - started) / 1000;
      console.log(
        `256 MiB over 3 hops: ${seconds.toFixed(1)} s (${(SIZE / 2 ** 20 / seconds).toFixed(0)} MiB/s), RSS growth peak ${((peak - base) / 2 ** 20).toFixed(0)} MiB`,
      );
      expect(d.inbox).toHaveLength(1);
      expect(d.inbox[0].size).toBe(SIZE);
      expect(d.inbox[0].sha256).toBe(sha);
      expect(peak - base).toBeLessThan(RSS_CEILING);
      const chunks = rec.events.filter((e) => e.kind === 'chunks');
      // Progress came chunk by chunk (what `kith track` draws), in order.
      const acked = chunks.map((e) => (e.kind === 'chunks' ? e.acked : -1));
      expect(acked.length).toBeGreaterThan(100);
      expect([...acked].sort((x, y) => x - y)).toEqual(acked);
      expect(a.store.getOutbox(id)?.state).toBe('delivered');
    },
    HANG_MS + 30_000,
  );
});

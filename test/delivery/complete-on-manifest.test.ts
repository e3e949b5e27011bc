import { afterEach, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Simulation } from '../../agent/sim/sim.ts';
import { newMessageId, recordEvents } from './helpers.ts';

// Found by test/faults/kill in a clean-clone CI: bob was killed -9 after storing the last unit of
// a 5 MiB message and before handing it to his mailbox. After his restart the sender, whose every
// unit was acknowledged, re-sent only the manifest at each stall, and the recipient answered
// "all units here" without completing: neither side moved again. A failed hand-off (the sink
// refused, e.g. a full disk) ends in the same state, which is what this test makes happen.
describe('a complete transfer that was not handed off', () => {
  let sim: Simulation | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    sim = undefined;
    dir = undefined;
  });

  test('is delivered when the sender re-sends its manifest', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kith-complete-'));
    let refusals = 0;
    // Manifests that reached D after every unit was stored: with the fix the first one completes.
    let manifestsBefore = 0;
    const manifests = () => d.engine.metrics.get('duplicate_manifest') ?? 0;
    sim = new Simulation({
      delivery: { spoolDir: dir, stallTimeoutMs: 200 },
      customize: (i) =>
        i === 2
          ? {
              beforeReceive: () => {
                if (refusals++ > 0) return;
                manifestsBefore = manifests();
                throw new Error('ENOSPC: no space left on device');
              },
            }
          : undefined,
    });
    const [a, b, d] = sim.addAgents(3);
    sim.connect(a, b);
    sim.connect(b, d);
    await sim.start();
    const file = join(dir, 'payload.bin');
    const payload = randomBytes(300_000);
    await writeFile(file, payload);
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    await a.engine.send({ id, to: d.entity, source: { kind: 'file', path: file } });
    // Delivered, or five manifests after the refusal with nothing delivered: without the fix the
    // sender re-sends the manifest at every stall for good, so the test fails instead of hanging.
    await rec.waitFor(
      (e) => (e.kind === 'delivered' && e.id === id) || (refusals > 0 && manifests() >= manifestsBefore + 5),
    );
    expect(refusals).toBe(2);
    expect(rec.events.some((e) => e.kind === 'delivered' && e.id === id)).toBe(true);
    expect(d.inbox.map((m) => m.sha256)).toEqual([createHash('sha256').update(payload).digest('hex')]);
    expect(d.engine.metrics.get('completed_on_manifest')).toBe(1);
    expect(d.engine.metrics.get('sink_failed')).toBe(1);
  });
});

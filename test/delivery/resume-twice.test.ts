import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Simulation } from '../../agent/sim/sim.ts';
import { newMessageId, recordEvents } from './helpers.ts';

/** Open file descriptors of this process that point at `path`. */
async function openOn(path: string): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target === path) n++;
  }
  return n;
}

describe('resume asked twice at once', () => {
  let sim: Simulation | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    sim = undefined;
    dir = undefined;
  });

  // Found by bench/soak: send() resumes the message itself while the outbox job resumes it too;
  // the second used to replace the first, whose file handle stayed open until garbage collection.
  test('delivers once and leaves no file handle open', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kith-resume-'));
    sim = new Simulation({ delivery: { spoolDir: dir } });
    const [a, b, d] = sim.addAgents(3);
    sim.connect(a, b);
    sim.connect(b, d);
    await sim.start();
    const file = join(dir, 'payload.bin');
    await writeFile(file, randomBytes(100_000));
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    await a.engine.send({ id, to: d.entity, source: { kind: 'file', path: file } });
    await a.engine.resume(id);
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);
    expect(d.inbox).toHaveLength(1);
    expect(await openOn(file)).toBe(0);
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';
import { exited, startKith } from '../helpers/cli.ts';
import { progress, send, startAgents, until, type TestNetwork } from '../agents/network.ts';
import { stepGate } from './helpers.ts';

const CHUNKS = 16;
/** Runs a command on a pseudo-terminal, as a user's shell does: cli-progress draws only on a TTY. */
const ON_A_TTY = ['python3', '-c', 'import pty, sys; sys.exit(pty.spawn(sys.argv[1:]) >> 8)'];
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g');
const plain = (s: string) => s.replace(ANSI, '');
/** The bar as a user sees it once a rate is known: chunks, percentage, rate, time left. */
const WITH_RATE = /chunks \[[^\]]*\] \d+\/\d+ \d+% \| [\d.]+ (?:B|KiB|MiB|GiB)\/s \| (?:\d+:)?\d+:\d\d left/;

describe('kith track on a terminal while a file is on its way', () => {
  let net: TestNetwork;
  beforeAll(async () => {
    net = await startAgents(
      { names: ['a', 'b'], links: [['a', 'b']] },
      { delivery: { stallTimeoutMs: 120_000 } },
    );
  });
  afterAll(async () => net?.close(), 60_000);

  it('draws a progress bar with the rate and the time left, then says delivered', async () => {
    const [a, b] = ['a', 'b'].map((n) => net.agent(n).node);
    const file = join(net.dir, 'f.bin');
    await writeFile(file, randomBytes(CHUNKS * CHUNK_BYTES - 1000));
    // The manifest and 2 chunks pass, then one chunk per step of the test.
    const gate = stepGate(a, b, 3);
    const id = await send(a, b, { file });
    await until(() => (progress(a, id).chunks?.acked === 2 ? true : undefined), '2 chunks acknowledged');

    const kith = await startKith(
      ['--data-dir', a.paths.root, 'track', id],
      {},
      /chunks \[/,
      undefined,
      ON_A_TTY,
    );
    try {
      // Chunks acknowledged one at a time: from the second sample on, the bar knows a rate.
      const total = progress(a, id).chunks!.total;
      let allowed = 3;
      while (!WITH_RATE.test(plain(kith.stdout())) && allowed < total + 1) {
        await gate.allow(++allowed);
        const acked = allowed - 1;
        await until(
          () => ((progress(a, id).chunks?.acked ?? 0) >= acked ? true : undefined),
          `${acked} chunks acknowledged`,
        );
        // The bar redraws on its own timer: wait until it drew this count.
        await until(
          () => (plain(kith.stdout()).includes(` ${acked}/${total} `) ? true : undefined),
          `the bar at ${acked}`,
        );
      }
      expect(plain(kith.stdout())).toMatch(WITH_RATE);
      await gate.allow(Infinity);
      expect(await exited(kith.child)).toBe(0);
      expect(plain(kith.stdout())).toMatch(/state: delivered/);
    } finally {
      kith.child.kill();
    }
  });
});

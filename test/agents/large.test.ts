import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  messagesContaining,
  progress,
  send,
  startAgents,
  until,
  type TestNetwork,
  closeAgents,
  START_BOUND_MS,
  STOP_BOUND_MS,
} from './network.ts';
import { mib, sampleRss, writePayload } from '../helpers/rss.ts';

const MiB = 1024 * 1024;
/** The issue asks for 1 GB. */
const SIZE = 1024 * MiB;
/** Growth of this process's RSS allowed while sender and recipient both run in it. */
const CEILING = 128 * MiB;
/** Only a hang detector: ~60 s on a quiet 2-core machine, several times that beside a CPU hog. */
const HANG_MS = 900_000;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('real agents: a 1 GiB file', () => {
  let net: TestNetwork;
  beforeAll(async () => {
    net = await startAgents({ names: ['a', 'b'], links: [['a', 'b']] });
  }, START_BOUND_MS);
  afterAll(closeAgents, STOP_BOUND_MS);

  it(
    'arrives intact (SHA-256) while the process grows by far less than the payload',
    async () => {
      const a = net.agent('a').node;
      const b = net.agent('b').node;
      const file = join(net.dir, 'big.bin');
      const digest = await writePayload(file, SIZE);

      const rss = sampleRss();
      const started = Date.now();
      let id;
      try {
        id = await send(a, b, { file });
        await until(
          () => (progress(a, id!).state === 'delivered' ? true : undefined),
          'delivered',
          HANG_MS,
          250,
        );
      } finally {
        rss.stop();
      }
      const seconds = (Date.now() - started) / 1000;
      // The numbers behind the assertion, for whoever tunes the transfer.
      process.stdout.write(
        `1 GiB in ${seconds.toFixed(1)} s (${(SIZE / MiB / seconds).toFixed(0)} MiB/s), RSS +${mib(rss.stop())} MiB\n`,
      );
      expect(rss.stop()).toBeLessThan(CEILING);

      expect(await messagesContaining(b, 'File received: big.bin')).toHaveLength(1);
      const saved = (await readdir(join(b.paths.root, 'received'))).filter((f) => f.endsWith('big.bin'));
      expect(saved).toHaveLength(1);
      const got = join(b.paths.root, 'received', saved[0]);
      expect(await sha256File(got)).toBe(digest);
      await rm(got);
    },
    HANG_MS + 60_000,
  );
});

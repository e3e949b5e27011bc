import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import {
  messagesContaining,
  progress,
  send,
  startAgents,
  until,
  type TestNetwork,
} from '../agents/network.ts';
import { linkIn } from './helpers.ts';
import { mib, sampleRss, writePayload } from '../helpers/rss.ts';
import { HANG_MS } from '../helpers/hang.ts';

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
/** Growth of this process's RSS allowed while sender, recipient and a reader of the link all run in it. */
const CEILING = 128 * MiB;

describe('a big transfer read from its link while it arrives', () => {
  let net: TestNetwork;
  beforeAll(async () => {
    net = await startAgents({ names: ['a', 'b'], links: [['a', 'b']] });
  });
  afterAll(async () => net?.close(), 60_000);

  it('streams the whole file to the reader intact with memory far below the file size', async () => {
    const a = net.agent('a').node;
    const b = net.agent('b').node;
    const file = join(net.dir, 'big.bin');
    const digest = await writePayload(file, SIZE);
    const rss = sampleRss();
    const started = Date.now();
    let firstByteMs = 0;
    try {
      const id = await send(a, b, { file });
      const [mail] = await until(async () => {
        const found = await messagesContaining(b, 'X-Mozilla-Cloud-Part');
        return found.length > 0 ? found : undefined;
      }, 'the link mail');
      const res = await fetch(linkIn(mail)!);
      expect(Number(res.headers.get('content-length'))).toBe(SIZE);
      const hash = createHash('sha256');
      let got = 0;
      for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (got === 0) firstByteMs = Date.now() - started;
        hash.update(piece);
        got += piece.length;
      }
      expect(got).toBe(SIZE);
      expect(hash.digest('hex')).toBe(digest);
      await until(
        () => (progress(a, id).state === 'delivered' ? true : undefined),
        'delivered',
        HANG_MS,
        250,
      );
    } finally {
      rss.stop();
    }
    const seconds = (Date.now() - started) / 1000;
    process.stdout.write(
      `256 MiB read from the link while arriving: first byte after ${firstByteMs} ms, all in ${seconds.toFixed(1)} s, RSS +${mib(rss.stop())} MiB\n`,
    );
    expect(rss.stop()).toBeLessThan(CEILING);
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { KithNode } from '../../agent/node.ts';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';
import { HANG_MS } from '../helpers/hang.ts';
import { line, startAgents, type TestNetwork } from '../agents/network.ts';
import { makeFragmentedMp4, makeWebm, PLAY_BOUND_CHUNKS, run, sendHeld } from './helpers.ts';

/** Frames mpv must show: one second of the 25 fps pattern. */
const FRAMES = 25;

/**
 * mpv (Debian's; .ci/run installs it), as a user runs it on the link of a transfer still
 * arriving (issue 15): `mpv URL` with no options about seeking or streams. It writes the frames
 * it shows as images (`--vo=image`), so "it played" is a count of shown frames, and it is asked
 * for one second of them while the sender's link holds all but the first 2 MiB back. The WebM is
 * one ffmpeg wrote to a file (its index, the Cues, at the end); the MP4 is fragmented, whose link
 * opens as a stream while it arrives (gateway/streams/range.ts answerAsStream): offered ranges,
 * mpv's MP4 demuxer (ffmpeg's) would read every fragment to the end of the file first.
 */
describe('mpv plays a link while the transfer arrives', () => {
  let net: TestNetwork;
  let a: KithNode, b: KithNode;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b']), { delivery: { stallTimeoutMs: 3_600_000 } });
    [a, b] = ['a', 'b'].map((n) => net.agent(n).node);
  });
  afterAll(async () => net?.close());

  it.each([
    ['a WebM (VP8 + Opus)', 'pattern.webm', makeWebm],
    ['a fragmented MP4 (H.264 + AAC)', 'pattern.mp4', makeFragmentedMp4],
  ])('%s: a second of frames shown with at most 2 MiB of it stored', async (_kind, name, make) => {
    const file = join(net.dir, name);
    await make(file, 20);
    expect((await stat(file)).size).toBeGreaterThan(3 * PLAY_BOUND_CHUNKS * CHUNK_BYTES);
    const transfer = await sendHeld(a, b, file);

    const shown = await mkdtemp(join(net.dir, 'mpv-'));
    await run(
      'mpv',
      [
        ...['--no-config', '--no-terminal', '--ao=null', `--frames=${FRAMES}`],
        ...['--vo=image', '--vo-image-format=png', `--vo-image-outdir=${shown}`],
        transfer.url,
      ],
      { timeout: HANG_MS },
    );
    expect((await readdir(shown)).filter((f) => f.endsWith('.png'))).toHaveLength(FRAMES);

    const now = transfer.stillArriving();
    expect(now.stored).toBeGreaterThan(0);
    expect(now.stored * CHUNK_BYTES).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(now.held).toBeGreaterThan(0);
    expect(now.delivered).toBe(false);
    await transfer.finish();
  });
});

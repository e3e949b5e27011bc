import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KithNode } from '../../agent/node.ts';
import { KITH_BIN, exited, runKithAsync } from '../helpers/cli.ts';
import { line, messagesContaining, startAgents, until, type TestNetwork } from '../agents/network.ts';
import { decodeStart, linkMail, liveWebm, probe, run } from './helpers.ts';

/** A live input gives players little to probe: they must start from what they have. */
const LIVE_PROBE = ['-probesize', '100000', '-analyzeduration', '500000'];

/** Seconds of video ffmpeg writes at real-time pace: the stream is live for at least this long. */
const SECONDS = 15;

/**
 * `kith stream --from DEVICE` (docs/protocol.md 8.2): a path that is a FIFO or a character device
 * is read as it comes, at its own pace, never seeked or sized. No capture hardware here: a FIFO
 * that ffmpeg writes at real-time pace (`-re`) behaves as one does — bytes only as fast as time
 * passes, no length, no seeking, an end only when the writer closes it.
 */
describe('kith stream --from a FIFO fed by ffmpeg in real time', () => {
  let net: TestNetwork;
  let a: KithNode, b: KithNode;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b']));
    [a, b] = ['a', 'b'].map((n) => net.agent(n).node);
  });
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await net?.close();
  });

  it('plays live from the link while the device still writes, and is saved whole when it closes', async () => {
    const fifo = join(net.dir, 'cam.webm');
    await run('mkfifo', [fifo]);
    expect((await stat(fifo)).isFIFO()).toBe(true);
    const kith = spawn(
      process.execPath,
      [KITH_BIN, '--data-dir', a.paths.root, 'stream', b.identity.fingerprint, '--from', fifo],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
    );
    // Encoded first, then copied into the FIFO at real-time pace: encoding VP8 live at nice 10
    // beside a CPU hog fell so far behind real time that the case outlived Jest's bound in CI;
    // copying costs next to nothing, and the FIFO still fills only as fast as time passes.
    const clip = join(net.dir, 'clip.webm');
    await writeFile(clip, await liveWebm(SECONDS));
    const ffmpeg = spawn(
      'ffmpeg',
      ['-v', 'error', '-re', '-i', clip, '-c', 'copy', '-f', 'webm', '-y', fifo],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    children.push(kith, ffmpeg);
    let stderr = '';
    kith.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let ffmpegErr = '';
    ffmpeg.stderr!.on('data', (chunk: Buffer) => (ffmpegErr += chunk.toString()));

    const url = await linkMail(b, 'Subject: Live stream: cam.webm');
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.headers.get('content-type')).toBe('video/webm');
    expect(head.headers.get('content-length')).toBeNull(); // no end signed: the device is open
    expect((await probe(url, LIVE_PROBE)).codecs).toEqual(['opus', 'vp8']);
    expect(await decodeStart(url, 1, LIVE_PROBE)).toBeGreaterThanOrEqual(20);
    // Played while the device is still being written: ffmpeg has not finished its real-time run.
    expect(ffmpeg.exitCode).toBeNull();
    expect(kith.exitCode).toBeNull();

    expect(await exited(ffmpeg)).toBe(0);
    expect(ffmpegErr).toBe('');
    expect(await exited(kith)).toBe(0);
    const bytes = Number(/stream ended: (\d+) bytes/.exec(stderr)?.[1]);
    expect(bytes).toBeGreaterThan(0);
    await until(
      async () => ((await messagesContaining(b, 'File received: cam.webm')).length > 0 ? true : undefined),
      'the stream saved',
    );
    const saved = (await readdir(join(b.paths.root, 'received'))).filter((f) => f.endsWith('-cam.webm'));
    expect(saved).toHaveLength(1);
    const path = join(b.paths.root, 'received', saved[0]);
    expect((await stat(path)).size).toBe(bytes);
    const whole = await probe(path);
    expect(whole.codecs).toEqual(['opus', 'vp8']);
  });

  it('refuses a path that is no file, FIFO or device before a stream is opened', async () => {
    const sent = await runKithAsync([
      '--data-dir',
      a.paths.root,
      'stream',
      b.identity.fingerprint,
      '--from',
      net.dir,
    ]);
    expect(sent.status).toBe(1);
    expect(sent.stderr).toContain('not a file, a FIFO or a character device');
    expect(sent.stdout).toBe(''); // no stream was opened
  });
});

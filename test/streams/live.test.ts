import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Segmenter } from '../../cli/commands/stream.ts';
import { parseSegment, shouldCut } from '../../agent/streams/live-format.ts';
import { KITH_BIN, exited, runKithAsync } from '../helpers/cli.ts';
import { line, messagesContaining, startAgents, until, type TestNetwork } from '../agents/network.ts';
import { decodeStart, linkMail, liveWebm, probe } from './helpers.ts';

/** A live input gives players little to probe: they must start from what they have. */
const LIVE_PROBE = ['-probesize', '100000', '-analyzeduration', '500000'];

describe('kith stream: a live WebM of unknown length plays from the link as it is sent', () => {
  let net: TestNetwork;
  let media: Buffer;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b', 'c', 'd']));
    media = await liveWebm(5);
  });
  afterAll(async () => net?.close(), 60_000);

  it('plays live before the input ends, then has a length and is saved once it ends', async () => {
    const a = net.agent('a').node;
    const d = net.agent('d').node;
    // The real CLI, reading stdin, as `ffmpeg … -f webm - | kith stream bob --from -` would.
    const child = spawn(
      process.execPath,
      [KITH_BIN, '--data-dir', a.paths.root, 'stream', d.identity.fingerprint, '--from', '-'],
      { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
    );
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const first = Math.floor(media.length * 0.4);
    child.stdin!.write(media.subarray(0, first));

    // A hang detector only (docs/architecture.md): it includes the `kith stream` process starting
    // under tsx, which took over 30 s at load 28 (seen 2026-12-03).
    const url = await linkMail(d, 'Subject: Live stream: live.webm');
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.headers.get('content-type')).toBe('video/webm');
    expect(head.headers.get('content-length')).toBeNull(); // the end is not signed yet
    expect(head.headers.get('accept-ranges')).toBe('none');
    expect((await probe(url, LIVE_PROBE)).codecs).toEqual(['opus', 'vp8']);
    expect(await decodeStart(url, 1, LIVE_PROBE)).toBeGreaterThanOrEqual(20);
    // Played while the sender is still streaming: its input is open, nothing marks an end.
    expect(child.exitCode).toBeNull();
    expect((await fetch(url, { method: 'HEAD' })).headers.get('content-length')).toBeNull();

    child.stdin!.end(media.subarray(first));
    expect(await exited(child)).toBe(0);
    expect(stderr).toContain(`stream ended: ${media.length} bytes`);
    await until(
      async () => ((await messagesContaining(d, 'File received: live.webm')).length > 0 ? true : undefined),
      'the stream saved',
    );
    const saved = (await readdir(join(d.paths.root, 'received'))).filter((f) => f.endsWith('-live.webm'));
    expect(saved).toHaveLength(1);
    expect((await readFile(join(d.paths.root, 'received', saved[0]))).equals(media)).toBe(true);
    // Now the signed final segment gave it a length: ranges work like a file's.
    const tail = await fetch(url, { headers: { Range: 'bytes=-100' } });
    expect(tail.status).toBe(206);
    expect(tail.headers.get('content-range')).toBe(
      `bytes ${media.length - 100}-${media.length - 1}/${media.length}`,
    );
    expect(Buffer.from(await tail.arrayBuffer()).equals(media.subarray(-100))).toBe(true);
    expect(await messagesContaining(d, 'Subject: Live stream: live.webm')).toHaveLength(1);
  });

  it('reads an http URL as it comes (a camera or an encoder serving its output): plays before the answer ends', async () => {
    const a = net.agent('a').node;
    const d = net.agent('d').node;
    // The source: an HTTP server that sends 40 % of the stream, then the rest only when told.
    const first = Math.floor(media.length * 0.4);
    let rest!: () => void;
    const more = new Promise<void>((resolve) => (rest = resolve));
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'video/webm' });
      res.write(media.subarray(0, first));
      void more.then(() => res.end(media.subarray(first)));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const child = spawn(
      process.execPath,
      [
        KITH_BIN,
        '--data-dir',
        a.paths.root,
        'stream',
        d.identity.fingerprint,
        '--from',
        `http://127.0.0.1:${port}/cam.webm`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
    );
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    try {
      const url = await linkMail(d, 'Subject: Live stream: cam.webm');
      expect((await fetch(url, { method: 'HEAD' })).headers.get('content-type')).toBe('video/webm');
      expect(await decodeStart(url, 1, LIVE_PROBE)).toBeGreaterThanOrEqual(20);
      // Played while the source's answer is still open.
      expect(child.exitCode).toBeNull();
      rest();
      expect(await exited(child)).toBe(0);
      expect(stderr).toContain(`stream ended: ${media.length} bytes`);
      await until(
        async () => ((await messagesContaining(d, 'File received: cam.webm')).length > 0 ? true : undefined),
        'the stream saved',
      );
      const saved = (await readdir(join(d.paths.root, 'received'))).filter((f) => f.endsWith('-cam.webm'));
      expect(saved).toHaveLength(1);
      expect((await readFile(join(d.paths.root, 'received', saved[0]))).equals(media)).toBe(true);
    } finally {
      rest();
      child.kill();
      server.close();
    }
  });

  it('a URL that does not answer fails before anything is sent', async () => {
    const a = net.agent('a').node;
    const d = net.agent('d').node;
    const server = createServer((req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const run = await runKithAsync([
        '--data-dir',
        a.paths.root,
        'stream',
        d.identity.fingerprint,
        '--from',
        `http://127.0.0.1:${port}/gone.webm`,
      ]);
      expect(run.status).toBe(1);
      expect(run.stderr).toContain('HTTP 404');
      expect(run.stdout).toBe(''); // no stream was opened
    } finally {
      server.close();
    }
  });
});

describe('segments', () => {
  it('are cut by size, or by age so a slow input still reaches the viewer', () => {
    expect(shouldCut(0, 10_000)).toBe(false);
    expect(shouldCut(100, 10)).toBe(false);
    expect(shouldCut(100, 250)).toBe(true);
    expect(shouldCut(192 * 1024, 0)).toBe(true);
  });

  it('carry a signed end: only the final segment has a length, and it must be consistent', () => {
    const head = (h: object) => Buffer.from('KITH-STREAM/1 ' + JSON.stringify(h) + '\nDATA');
    const base = { stream: 'ab'.repeat(16), seq: 3, offset: 10, name: '../x.webm', type: 'video/webm' };
    expect(parseSegment(head({ ...base, final: false }))?.header.name).toBe('x.webm');
    expect(parseSegment(head({ ...base, final: true, length: 14 }))?.header.length).toBe(14);
    expect(parseSegment(head({ ...base, final: false, length: 14 }))).toBeUndefined();
    expect(parseSegment(head({ ...base, final: true }))).toBeUndefined();
    expect(parseSegment(head({ ...base, stream: 'nothex', final: false }))).toBeUndefined();
    expect(parseSegment(Buffer.from('KITH-FILE/1 {}\n'))).toBeUndefined();
  });

  it('are handed on in order, the last one marked final, with backpressure', async () => {
    const written: { data: string; final: boolean }[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = new Segmenter(async (data, final) => {
      await gate;
      written.push({ data: data.toString(), final });
    });
    await s.push(Buffer.alloc(192 * 1024, 'a'));
    await s.push(Buffer.from('tail'));
    const ended = s.end();
    expect(written).toHaveLength(0);
    release();
    await ended;
    expect(written.map((w) => [w.data.length, w.final])).toEqual([
      [192 * 1024, false],
      [4, true],
    ]);
  });
});

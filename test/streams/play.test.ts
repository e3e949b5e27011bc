import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  line,
  messagesContaining,
  progress,
  send,
  startAgents,
  until,
  type TestNetwork,
} from '../agents/network.ts';
import { decodeStart, gateLink, linkIn, makeFragmentedMp4, makeWebm, probe, sha256Of } from './helpers.ts';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';

/** Onion frames the last relay hands on before its link pauses: the manifest and 3 chunks (~768 KiB). */
const PASS = 4;

describe('a WebM sent through 3 hops plays from the link while it arrives', () => {
  let net: TestNetwork;
  let file: string;
  beforeAll(async () => {
    // A long stall timeout: the paused link must not make the sender change paths mid-test.
    net = await startAgents(line(['a', 'b', 'c', 'd']), { delivery: { stallTimeoutMs: 120_000 } });
    file = join(net.dir, 'pattern.webm');
    await makeWebm(file);
  });
  afterAll(async () => net?.close(), 60_000);

  it('mails the link at once, plays before the end, serves ranges, then saves the file', async () => {
    const [a, c, d] = ['a', 'c', 'd'].map((n) => net.agent(n).node);
    const size = (await stat(file)).size;
    const original = await readFile(file);
    const gate = gateLink(c, d, PASS);
    const id = await send(a, d, { file });

    // The link mail arrives while the rest of the file is held back at c.
    const [mail] = await until(async () => {
      const found = await messagesContaining(d, 'X-Mozilla-Cloud-Part');
      return found.length > 0 ? found : undefined;
    }, 'the link mail');
    await gate.firstHeld;
    const url = linkIn(mail)!;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/t\/[A-Za-z0-9_-]{32}\/pattern\.webm$/);
    expect(mail.toString()).toContain('Subject: File: pattern.webm');
    expect(mail.toString()).toContain('id="cloudAttachmentListRoot"');

    // ffprobe and a decoder read it over HTTP: the full length is known, the first second plays.
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.headers.get('content-type')).toBe('video/webm');
    expect(Number(head.headers.get('content-length'))).toBe(size);
    const probed = await probe(url);
    expect(probed.codecs).toEqual(['opus', 'vp8']);
    expect(await decodeStart(url, 1)).toBeGreaterThanOrEqual(20);
    // …while the transfer is still incomplete: frames are held at c, no file notice, not delivered.
    expect(gate.held()).toBeGreaterThan(0);
    expect(await messagesContaining(d, 'File received: pattern.webm')).toHaveLength(0);
    expect(progress(a, id).state).not.toBe('delivered');

    // A range within what arrived: 206 with the full length from the signed manifest.
    const part = await fetch(url, { headers: { Range: 'bytes=1000-1999' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 1000-1999/${size}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(original.subarray(1000, 2000))).toBe(true);

    // A range past what arrived waits for it instead of failing.
    const tail = fetch(url, { headers: { Range: `bytes=-1000` } }).then(async (r) => ({
      status: r.status,
      range: r.headers.get('content-range'),
      body: Buffer.from(await r.arrayBuffer()),
    }));
    let answered = false;
    void tail.then(() => (answered = true));
    const beyond = await fetch(url, { headers: { Range: `bytes=${size}-` } });
    expect(beyond.status).toBe(416);
    expect(answered).toBe(false);
    await gate.release();
    const got = await tail;
    expect(got.status).toBe(206);
    expect(got.range).toBe(`bytes ${size - 1000}-${size - 1}/${size}`);
    expect(got.body.equals(original.subarray(size - 1000))).toBe(true);

    // Complete: saved under received/, the notice mailed, the link now reads the saved file.
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered', 60_000);
    expect(await messagesContaining(d, 'File received: pattern.webm')).toHaveLength(1);
    const saved = (await readdir(join(d.paths.root, 'received'))).filter((f) => f.endsWith('pattern.webm'));
    expect(saved).toHaveLength(1);
    expect(await sha256Of(join(d.paths.root, 'received', saved[0]))).toBe(await sha256Of(file));
    const whole = Buffer.from(await (await fetch(url)).arrayBuffer());
    expect(whole.equals(original)).toBe(true);
    expect((await probe(url)).duration).toBeGreaterThan(4.5);
  });

  it('answers 404 to a link whose token is not one of ours', async () => {
    const d = net.agent('d').node;
    const base = d.streams.server.linkFor('x'.repeat(32), 'nothing.webm');
    expect((await fetch(base)).status).toBe(404);
  });

  it('plays a fragmented MP4 from the link with at most 2 MiB of it arrived', async () => {
    const [a, c, d] = ['a', 'c', 'd'].map((n) => net.agent(n).node);
    const mp4 = join(net.dir, 'pattern.mp4');
    await makeFragmentedMp4(mp4, 8);
    const size = (await stat(mp4)).size;
    expect(size).toBeGreaterThan(2 * 1024 * 1024); // more than a player may need before it starts
    const stored = () => d.engine.metrics.get('chunks_received') ?? 0;
    const before = stored();
    const gate = gateLink(c, d, PASS);
    const id = await send(a, d, { file: mp4 });
    const [mail] = await until(async () => {
      const found = await messagesContaining(d, 'pattern.mp4');
      return found.length > 0 ? found : undefined;
    }, 'the link mail');
    await gate.firstHeld;
    const url = linkIn(mail)!;
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.headers.get('content-type')).toBe('video/mp4');
    expect(Number(head.headers.get('content-length'))).toBe(size);
    // While it arrives the link opens as a stream (gateway/streams/range.ts answerAsStream): given
    // a seekable source, ffmpeg (as ffplay, mpv and Chromium use it) would first walk every
    // fragment's box header to the end of the file. ffprobe and ffmpeg with their defaults, as a
    // user runs them, play it from the first fragment on.
    expect(head.headers.get('accept-ranges')).toBe('none');
    expect((await probe(url)).codecs).toEqual(['aac', 'h264']);
    expect(await decodeStart(url, 1)).toBeGreaterThanOrEqual(20);
    // A range a client asks for is still served, with the full length.
    const part = await fetch(url, { headers: { Range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${size}`);
    expect(Buffer.from(await part.arrayBuffer())).toHaveLength(100);
    // …with the rest held at c: what d holds of it is at most 2 MiB.
    expect(gate.held()).toBeGreaterThan(0);
    expect((stored() - before) * CHUNK_BYTES).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(progress(a, id).state).not.toBe('delivered');
    await gate.release();
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered', 60_000);
    // Saved whole: an ordinary seekable file again, its duration read from the end.
    const saved = await fetch(url, { method: 'HEAD' });
    expect(saved.headers.get('accept-ranges')).toBe('bytes');
    expect((await probe(url)).duration).toBeGreaterThan(7.5);
  });
});

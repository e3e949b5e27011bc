import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';
import {
  line,
  messagesContaining,
  progress,
  send,
  startAgents,
  until,
  type TestNetwork,
} from '../agents/network.ts';
import { decodeStart, fileHeaderLength, gateLink, linkMail, makeWebm, probe, sha256Of } from './helpers.ts';

/**
 * Issue 15's "plays within 3 s" for a big file, asserted without a clock: a version 3 manifest
 * (docs/protocol.md 7.8, 7.9) leaves before the sender has read the file's end, so the head plays
 * from the recipient's link while the sender has not hashed the tail. The tail is held at the
 * relay (gateLink): the sender's window (1 MiB of chunks beyond the acknowledged ones) then keeps
 * it from reading further, deterministically.
 */
describe('a big file: the first chunks leave before the sender has hashed the whole file', () => {
  let net: TestNetwork;
  let clip: string;
  beforeAll(async () => {
    // A long stall timeout: the paused link must not make the sender change paths mid-test.
    net = await startAgents(line(['a', 'b', 'c']), { delivery: { stallTimeoutMs: 120_000 } });
    clip = join(net.dir, 'long.webm');
    await makeWebm(clip, 12);
  });
  afterAll(async () => net?.close());

  it('the link plays the head while the sender has hashed only what it sent; after a sender restart the hash unit still brings the right hash', async () => {
    const [a, b, c] = ['a', 'b', 'c'].map((n) => net.agent(n).node);
    const size = (await stat(clip)).size;
    const payload = size + fileHeaderLength('long.webm', size);
    const chunks = Math.ceil(payload / CHUNK_BYTES);
    // More chunks than the 3 let through and the sender's window of 4 beyond them.
    expect(chunks).toBeGreaterThan(3 + 4 + 2);

    // b hands c the manifest and 3 chunks, then holds the rest.
    const gate = gateLink(b, c, 4);
    const id = await send(a, c, { file: clip });
    const url = await linkMail(c);
    await gate.firstHeld;
    await until(
      () => (c.engine.metrics.get('chunks_received') >= 3 ? true : undefined),
      'three chunks stored',
    );

    // ffprobe and a decoder read the head from c's link…
    expect(Number((await fetch(url, { method: 'HEAD' })).headers.get('content-length'))).toBe(size);
    expect((await probe(url)).codecs).toEqual(['opus', 'vp8']);
    expect(await decodeStart(url, 1)).toBeGreaterThanOrEqual(20);
    // …while the sender has read and hashed only the chunks its window let out, not the file's end
    // (a version 1 manifest hashed all of it before the manifest left), and no hash unit arrived.
    const hashed = a.engine.metrics.get('payload_bytes_hashed');
    expect(hashed).toBeGreaterThanOrEqual(3 * CHUNK_BYTES);
    expect(hashed).toBeLessThanOrEqual((3 + 4) * CHUNK_BYTES);
    expect(hashed).toBeLessThan(payload);
    expect(c.engine.metrics.get('hash_units_received')).toBe(0);
    expect(progress(a, id).state).not.toBe('delivered');

    // The sender restarts: its running hash is gone. It resumes; c, given what b held, answers
    // the new manifest with more chunks than the sender knew of, so the sender hashes again the
    // chunks before the one it sends next (read from its payload file) and the hash unit is right.
    const a2 = (await net.restart('a')).node;
    await gate.release();
    await until(() => (progress(a2, id).state === 'delivered' ? true : undefined), 'delivered', 120_000);
    expect(a2.engine.metrics.get('payload_bytes_hashed')).toBe(payload);
    expect(c.engine.metrics.get('hash_units_received')).toBe(1);
    expect(c.engine.metrics.get('rejected_payload_corrupt')).toBe(0);
    expect(c.engine.metrics.get('chunks_received')).toBe(chunks);
    const saved = (await readdir(join(c.paths.root, 'received'))).filter((f) => f.endsWith('long.webm'));
    expect(saved).toHaveLength(1);
    expect(await sha256Of(join(c.paths.root, 'received', saved[0]))).toBe(await sha256Of(clip));
    expect(await messagesContaining(c, 'File received: long.webm')).toHaveLength(1);
  });
});

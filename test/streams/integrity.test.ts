import { afterEach, describe, expect, it } from '@jest/globals';
import { peerIdFromString } from '@libp2p/peer-id';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';
import type { KithNode } from '../../agent/node.ts';
import {
  line,
  messagesContaining,
  progress,
  send,
  startAgents,
  until,
  type TestNetwork,
} from '../agents/network.ts';
import { corruptFrame, gateLink, linkMail } from './helpers.ts';

const MiB = 1024 * 1024;

/** Bytes of the KITH-FILE header line before the file's own bytes (agent/files.ts). */
function headerLength(name: string, size: number): number {
  return Buffer.byteLength('KITH-FILE/1 ' + JSON.stringify({ name, size }) + '\n');
}

/**
 * A 4 MiB file from a to c over a–b–c, b's link to c paused once b handed on the manifest and 3
 * chunks (gateLink), and those 3 chunks stored at c: the start of each interruption below.
 */
async function pausedTransfer(net: TestNetwork, name: string) {
  const [a, b, c] = ['a', 'b', 'c'].map((n) => net.agent(n).node);
  const data = randomBytes(4 * MiB);
  const file = join(net.dir, name);
  await writeFile(file, data);
  const chunks = Math.ceil((data.length + headerLength(name, data.length)) / CHUNK_BYTES);
  const gate = gateLink(b, c, 4);
  const id = await send(a, c, { file });
  const url = await linkMail(c);
  await gate.firstHeld;
  await until(() => (c.engine.metrics.get('chunks_received') >= 3 ? true : undefined), 'three chunks stored');
  return { a, b, c, data, chunks, gate, id, url };
}

/** What the sender sent again stays within its window (1 MiB of chunks, delivery/decide.ts), and the link plays the whole file. */
async function expectResentWithinWindow(a: KithNode, url: string, data: Buffer): Promise<void> {
  const resent = a.engine.metrics.get('chunk_bytes_resent');
  expect(resent).toBeGreaterThan(0);
  expect(resent).toBeLessThanOrEqual(MiB);
  expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(data)).toBe(true);
}

describe('streams links: integrity and resumption', () => {
  let net: TestNetwork | undefined;
  afterEach(async () => {
    await net?.close();
    net = undefined;
  });

  it('a chunk damaged on the way is refused and never served; the range waits for the good copy', async () => {
    net = await startAgents(line(['a', 'b', 'c']), { delivery: { stallTimeoutMs: 5000 } });
    const [a, b, c] = ['a', 'b', 'c'].map((n) => net!.agent(n).node);
    const data = randomBytes(3 * MiB);
    const file = join(net.dir, 'data.bin');
    await writeFile(file, data);
    const offset = headerLength('data.bin', data.length);
    // Onion frame 2 from b to c is chunk 1 (frame 0: the manifest, 1: chunk 0).
    const corrupted = corruptFrame(b, c, 2);
    const id = await send(a, c, { file });
    const url = await linkMail(c);
    await corrupted;
    await until(
      () => (c.engine.metrics.get('rejected_chunk_forged') >= 1 ? true : undefined),
      'the damaged chunk refused',
    );
    // Bytes inside chunk 1, and inside chunk 2 (sent after it, so stored after the refusal).
    const inChunk = (i: number) => i * CHUNK_BYTES - offset + 100;
    let answered = false;
    // Answered = its bytes came (the status line and headers go out at once, before them).
    const damaged = fetch(url, { headers: { Range: `bytes=${inChunk(1)}-${inChunk(1) + 999}` } }).then(
      async (r) => {
        const bytes = Buffer.from(await r.arrayBuffer());
        answered = true;
        return bytes;
      },
    );
    const later = await fetch(url, { headers: { Range: `bytes=${inChunk(2)}-${inChunk(2) + 999}` } });
    expect(Buffer.from(await later.arrayBuffer()).equals(data.subarray(inChunk(2), inChunk(2) + 1000))).toBe(
      true,
    );
    expect(answered).toBe(false);
    // The sender re-sends from the last acknowledged chunk; the range gets the authentic bytes.
    expect((await damaged).equals(data.subarray(inChunk(1), inChunk(1) + 1000))).toBe(true);
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered', 60_000);
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(data)).toBe(true);
  });

  it('the recipient restarts mid-transfer: no stored chunk is lost, the transfer resumes, the link still plays', async () => {
    net = await startAgents(line(['a', 'b', 'c']), { delivery: { stallTimeoutMs: 3000 } });
    // b hands on the manifest and 3 chunks, then its link to c pauses.
    const { a, c: c0, data, chunks, gate, id } = await pausedTransfer(net, 'movie.bin');
    const storedBefore = c0.engine.metrics.get('chunks_received');

    const c = (await net.restart('c')).node;
    await gate.release();
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered', 90_000);

    // Every chunk stored before the restart was kept: the restarted agent stored only the rest.
    expect(storedBefore + c.engine.metrics.get('chunks_received')).toBe(chunks);
    const resent = a.engine.metrics.get('chunk_bytes_resent');
    process.stdout.write(
      `recipient restart: ${storedBefore} of ${chunks} chunks kept, ${a.engine.metrics.get('chunks_resent')} chunks (${resent} bytes) sent again\n`,
    );
    // What is sent again is at most what was in flight: 1 MiB of chunks (delivery/decide.ts).
    expect(resent).toBeLessThanOrEqual(MiB);
    expect(await messagesContaining(c, 'X-Mozilla-Cloud-Part')).toHaveLength(1);
    const url = c.streams.catalog.linkOf(id)!;
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(data)).toBe(true);
  });

  it('a link cut mid-transfer: what was in flight is sent again, nothing stored is, the link plays on', async () => {
    net = await startAgents(line(['a', 'b', 'c']), { delivery: { stallTimeoutMs: 3000 } });
    const { a, b, c, data, chunks, gate, id, url } = await pausedTransfer(net, 'cut.bin');
    // The link b–c is cut: the frames it held are gone, the connection closes.
    const lost = gate.drop();
    await b.links.libp2p.hangUp(peerIdFromString(c.identity.agentId));
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered', 90_000);
    // Each chunk was stored exactly once; the sender re-sent what the cut lost (at most its window).
    expect(c.engine.metrics.get('chunks_received')).toBe(chunks);
    const resent = a.engine.metrics.get('chunk_bytes_resent');
    process.stdout.write(
      `cut link: ${lost} frames lost in flight, ${a.engine.metrics.get('chunks_resent')} chunks (${resent} bytes) sent again\n`,
    );
    await expectResentWithinWindow(a, url, data);
  });

  it('the relay restarts mid-transfer: at most 1 MiB is sent again, each chunk is stored once', async () => {
    net = await startAgents(line(['a', 'b', 'c']), { delivery: { stallTimeoutMs: 3000 } });
    // b holds what it got after the manifest and 3 chunks: a restart loses it with b's memory.
    const { a, c, data, chunks, id, url } = await pausedTransfer(net, 'relay.bin');
    await net.restart('b');
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered', 120_000);
    expect(c.engine.metrics.get('chunks_received')).toBe(chunks);
    const resent = a.engine.metrics.get('chunk_bytes_resent');
    process.stdout.write(
      `relay restart: ${a.engine.metrics.get('chunks_resent')} chunks (${resent} bytes) sent again\n`,
    );
    await expectResentWithinWindow(a, url, data);
  });
});

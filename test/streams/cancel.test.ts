import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { access, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KithNode } from '../../agent/node.ts';
import type { OutboxRecord } from '../../agent/delivery/store.ts';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';
import { runKithAsync } from '../helpers/cli.ts';
import {
  line,
  messagesContaining,
  progress,
  startAgents,
  until,
  type TestNetwork,
} from '../agents/network.ts';
import { fileHeaderLength, gateLink, kithSendFile, linkMail } from './helpers.ts';

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * The end of a transfer that will never complete (docs/protocol.md 7.9 cancel unit, 8.1): the
 * sender that gives up tells the recipient, whose waiting link requests end, whose spool goes,
 * and whose link then answers 410 Gone with the reason; a cancel that is not the sender's is
 * refused and the transfer goes on. The relay b holds what follows the manifest and 3 chunks
 * (gateLink), so "while it arrives" is a chunk count, not a clock.
 */
describe('a transfer its sender gives up', () => {
  let net: TestNetwork;
  let a: KithNode, b: KithNode, c: KithNode;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b', 'c']), { delivery: { stallTimeoutMs: 3_600_000 } });
    [a, b, c] = ['a', 'b', 'c'].map((n) => net.agent(n).node);
  });
  afterAll(async () => net?.close());

  async function someFile(name: string, chunks: number): Promise<string> {
    const file = join(net.dir, name);
    await writeFile(file, randomBytes(chunks * CHUNK_BYTES));
    return file;
  }

  const stored = (n: number) =>
    until(() => (c.engine.metrics.get('chunks_received') >= n ? true : undefined), `${n} chunks stored`);

  it('ends the waiting range request, frees the spool, and the link then says it was cancelled', async () => {
    const file = await someFile('gives-up.bin', 12);
    const gate = gateLink(b, c, 4);
    const before = c.engine.metrics.get('chunks_received');
    const id = await kithSendFile(a, c, file);
    const url = await linkMail(c);
    await gate.firstHeld;
    await stored(before + 3);
    const spool = join(c.paths.root, 'spool', `${id}.part`);
    expect(await exists(spool)).toBe(true);

    // A player asks for the end of the file: not there yet, so the answer waits (headers sent).
    const tail = 11 * CHUNK_BYTES;
    const waiting = await fetch(url, { headers: { Range: `bytes=${tail}-${tail + 999}` } });
    expect(waiting.status).toBe(206);
    const body = waiting.arrayBuffer().then(
      () => 'complete',
      () => 'cut short',
    );

    // The user writes into the file while it is sent: the sender fails it and sends its cancel.
    const fh = await open(file, 'r+');
    await fh.write(Buffer.from('changed'), 0, 7, (await stat(file)).size - 7);
    await fh.close();
    await gate.release();

    expect(await body).toBe('cut short');
    expect(c.engine.metrics.get('transfers_cancelled')).toBe(1);
    expect(await exists(spool)).toBe(false);
    const gone = await fetch(url);
    expect(gone.status).toBe(410);
    const text = await gone.text();
    expect(text).toContain('cancelled by its sender');
    expect(text).toContain('was changed while it was being sent');
    // The link mail the recipient already has stays; the sender's track says why it failed.
    expect(await messagesContaining(c, 'Subject: File: gives-up.bin')).toHaveLength(1);
    const track = await runKithAsync(['--data-dir', a.paths.root, 'track', id, '--once']);
    expect(track.stdout).toContain(': failed: ');
    expect(a.engine.metrics.get('cancels_sent')).toBe(1);
  });

  it('refuses a cancel from another agent with its reason, and the transfer goes on', async () => {
    const file = await someFile('goes-on.bin', 10);
    const gate = gateLink(b, c, 4);
    const before = c.engine.metrics.get('chunks_received');
    const id = await kithSendFile(a, c, file);
    await linkMail(c, 'Subject: File: goes-on.bin');
    await gate.firstHeld;
    await stored(before + 3);

    // The relay b, which carries the transfer and knows its message id, forges a cancel: it
    // cannot know the content key of the sender's manifest, so it seals under one of its own.
    const forged: OutboxRecord = {
      id,
      to: c.identity.fingerprint,
      source: { kind: 'bytes', data: Buffer.alloc(0) },
      size: 10 * CHUNK_BYTES + fileHeaderLength('goes-on.bin', 10 * CHUNK_BYTES),
      sealedManifest: Buffer.alloc(0),
      contentKey: randomBytes(32),
      chunks: 12,
      chunkSize: CHUNK_BYTES,
      acked: 0,
      state: 'failed',
      createdAt: Date.now(),
      deadline: Date.now() + 60_000,
    };
    await b.engine['sender']['sendCancel'](forged, undefined, 'forged by the relay');
    expect(b.engine.metrics.get('cancels_sent')).toBe(1);
    await gate.release();

    await until(
      () => (c.engine.metrics.get('rejected_cancel_forged') === 1 ? true : undefined),
      'the forgery refused',
    );
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered');
    expect(c.engine.metrics.get('transfers_cancelled')).toBe(1); // the first test's, no more
    const url = await linkMail(c, 'Subject: File: goes-on.bin');
    const whole = await fetch(url);
    expect(whole.status).toBe(200);
    const saved = Buffer.from(await whole.arrayBuffer());
    expect(saved.length).toBe(10 * CHUNK_BYTES);
    expect(saved.equals(await readFile(file))).toBe(true);
  });
});

/**
 * A sender that died for good never sends its cancel: the recipient ends a transfer that stores
 * nothing for delivery.inboundIdleMs. The limit is a few seconds here; its timer firing is what
 * the test waits for (the waiting request ending), not a sleep.
 */
describe('a transfer whose sender vanished', () => {
  let net: TestNetwork;
  let a: KithNode, b: KithNode;
  const IDLE_MS = 4_000;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b']), {
      delivery: { stallTimeoutMs: 3_600_000, inboundIdleMs: IDLE_MS },
    });
    [a, b] = ['a', 'b'].map((n) => net.agent(n).node);
  });
  afterAll(async () => net?.close());

  it('expires after the configured idle time: the waiting request ends, the spool goes, the link says so', async () => {
    const file = join(net.dir, 'vanished.bin');
    await writeFile(file, randomBytes(8 * CHUNK_BYTES));
    // a's link to b carries the manifest and 3 chunks, then nothing more: a sender gone silent.
    const gate = gateLink(a, b, 4);
    const id = await kithSendFile(a, b, file);
    const url = await linkMail(b);
    await gate.firstHeld;
    const spool = join(b.paths.root, 'spool', `${id}.part`);

    const tail = 7 * CHUNK_BYTES;
    const first = await fetch(url, { headers: { Range: `bytes=${tail}-${tail + 999}` } });
    if (first.status === 206) {
      // Waiting for bytes that never come, until the expiry cuts it short.
      expect(
        await first.arrayBuffer().then(
          () => 'complete',
          () => 'cut short',
        ),
      ).toBe('cut short');
    } else {
      // On a slow machine the expiry may have come before the request: then it is already Gone.
      expect(first.status).toBe(410);
    }
    expect(b.engine.metrics.get('transfers_expired')).toBe(1);
    expect(await exists(spool)).toBe(false);
    const gone = await fetch(url);
    expect(gone.status).toBe(410);
    expect(await gone.text()).toContain('expired incomplete: no part of it arrived for 4 s');
    expect(await messagesContaining(b, 'Subject: File: vanished.bin')).toHaveLength(1);
    gate.drop();
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KithNode } from '../../agent/node.ts';
import { chunksInFlight } from '../../agent/delivery/decide.ts';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';
import type { MessageId } from '../../common/ids.ts';
import { runKithAsync } from '../helpers/cli.ts';
import {
  line,
  messagesContaining,
  progress,
  startAgents,
  until,
  type TestNetwork,
} from '../agents/network.ts';
import {
  decodeStart,
  fileHeaderLength,
  gateLink,
  kithSendFile,
  linkMail,
  makeWebm,
  probe,
  sha256Of,
} from './helpers.ts';

/** Chunks the sender has out beyond the acknowledged ones. */
const WINDOW = chunksInFlight(CHUNK_BYTES);

const stored = (node: KithNode, n: number) =>
  until(
    () => (node.engine.metrics.get('chunks_received') >= n ? true : undefined),
    `${n} chunks stored`,
    280_000,
  );

/**
 * `kith send --file` reads the file where it lies (agent/files.ts, docs/protocol.md 8.1): no copy
 * into outgoing/ before the first chunk leaves. The relay b holds what comes after the manifest
 * and 3 chunks (gateLink), so the sender's window (4 chunks beyond the acknowledged ones) keeps it
 * from reading further: "before the sender read the file's end" is a byte count, not a clock.
 */
describe('kith send --file: sent from the file in place', () => {
  let net: TestNetwork;
  let a: KithNode, b: KithNode, c: KithNode;
  beforeAll(async () => {
    // A long stall timeout: the paused link must not make the sender change paths mid-test.
    net = await startAgents(line(['a', 'b', 'c']), { delivery: { stallTimeoutMs: 3_600_000 } });
    [a, b, c] = ['a', 'b', 'c'].map((n) => net.agent(n).node);
  });
  afterAll(async () => net?.close());

  it('the link plays the head before the sender read the file to its end; the user deletes the file and the sender restarts: delivered whole', async () => {
    const clip = join(net.dir, 'long.webm');
    await makeWebm(clip, 12);
    const size = (await stat(clip)).size;
    const payload = size + fileHeaderLength('long.webm', size);
    const chunks = Math.ceil(payload / CHUNK_BYTES);
    expect(chunks).toBeGreaterThan(3 + WINDOW + 2);
    const original = await sha256Of(clip);

    const gate = gateLink(b, c, 4);
    const id = await kithSendFile(a, c, clip, { quiet: true });
    // No copy: outgoing/ holds the file itself (a hard link: the same inode, no bytes written).
    const outgoing = join(a.paths.root, 'outgoing');
    expect(await readdir(outgoing)).toEqual([id]);
    expect((await stat(join(outgoing, id))).ino).toBe((await stat(clip)).ino);

    const url = await linkMail(c);
    await gate.firstHeld;
    await stored(c, 3);
    expect((await probe(url)).codecs).toEqual(['opus', 'vp8']);
    expect(await decodeStart(url, 1)).toBeGreaterThanOrEqual(20);
    // The sender has read only what its window let out (a copy read every byte first).
    const read = a.engine.metrics.get('payload_bytes_read');
    expect(read).toBeGreaterThanOrEqual(3 * CHUNK_BYTES);
    expect(read).toBeLessThanOrEqual((3 + WINDOW) * CHUNK_BYTES);
    expect(read).toBeLessThan(payload);
    expect(progress(a, id).state).not.toBe('delivered');

    // The user deletes the file, then the sender restarts: the hard link still holds the bytes
    // sealed, and the restarted sender resumes from them.
    await rm(clip);
    const a2 = (await net.restart('a')).node;
    a = a2;
    await gate.release();
    await until(() => (progress(a2, id).state === 'delivered' ? true : undefined), 'delivered', 280_000);
    expect(c.engine.metrics.get('rejected_payload_corrupt')).toBe(0);
    const saved = (await readdir(join(c.paths.root, 'received'))).filter((f) => f.endsWith('long.webm'));
    expect(saved).toHaveLength(1);
    expect(await sha256Of(join(c.paths.root, 'received', saved[0]))).toBe(original);
  });

  /** A file of `n` chunks' worth of random bytes in the test's directory. */
  async function someFile(name: string, n: number): Promise<string> {
    const file = join(net.dir, name);
    await writeFile(file, randomBytes(n * CHUNK_BYTES));
    return file;
  }

  /** Overwrites the file's last bytes in place, as a program writing into it would. */
  async function scribble(file: string): Promise<void> {
    const before = await stat(file, { bigint: true });
    const fh = await open(file, 'r+');
    await fh.write(Buffer.from('changed'), 0, 7, Number(before.size) - 7);
    await fh.close();
    // The change must be one a stat can see, or this test proves nothing.
    expect((await stat(file, { bigint: true })).mtimeNs).not.toBe(before.mtimeNs);
  }

  async function failedWith(id: MessageId, name: string, text: string): Promise<void> {
    await until(() => (progress(a, id).state === 'failed' ? true : undefined), 'failed', 280_000);
    // `kith track` says why (a `kith send` has no SMTP submission, so no status email).
    const track = await runKithAsync(['--data-dir', a.paths.root, 'track', id, '--once']);
    expect(track.status).toBe(0);
    expect(track.stdout).toContain(`: failed: `);
    expect(track.stdout).toContain(text);
    // The recipient got no file and no notice: it never had the hash unit.
    expect(await messagesContaining(c, `File received: ${name}`)).toHaveLength(0);
    const saved = (await readdir(join(c.paths.root, 'received'))).filter((f) => f.endsWith(name));
    expect(saved).toHaveLength(0);
  }

  it('a file changed while it is in flight fails the message, and kith track says why', async () => {
    const file = await someFile('changes.bin', 12);
    const before = c.engine.metrics.get('hash_units_received');
    const gate = gateLink(b, c, 4);
    const id = await kithSendFile(a, c, file, { quiet: true });
    await gate.firstHeld;
    await scribble(file);
    await gate.release();
    await failedWith(id, 'changes.bin', 'was changed while it was being sent');
    expect(c.engine.metrics.get('hash_units_received')).toBe(before);
  });

  it('a file changed while the sender is down fails the message when it restarts', async () => {
    const file = await someFile('changes-offline.bin', 12);
    const before = c.engine.metrics.get('hash_units_received');
    const readBefore = a.engine.metrics.get('payload_bytes_read');
    const gate = gateLink(b, c, 4);
    const id = await kithSendFile(a, c, file, { quiet: true });
    await gate.firstHeld;
    // 3 chunks acknowledged and the window beyond them read: b holds the rest, so the sender
    // reads nothing more until it restarts, and only the restarted sender can see the change.
    await until(
      () =>
        progress(a, id).chunks?.acked === 3 &&
        a.engine.metrics.get('payload_bytes_read') - readBefore === (3 + WINDOW) * CHUNK_BYTES
          ? true
          : undefined,
      'the window read',
      280_000,
    );
    await scribble(file);
    a = (await net.restart('a')).node;
    await failedWith(id, 'changes-offline.bin', 'was changed while it was being sent');
    expect(a.engine.metrics.get('messages_failed')).toBe(1);
    await gate.release();
    expect(c.engine.metrics.get('hash_units_received')).toBe(before);
  });
});

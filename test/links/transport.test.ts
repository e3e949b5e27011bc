import { createHash, randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { MAX_FRAME_BYTES } from '../../agent/transport.ts';
import { eventually, removeTempDirs, sleep, startAgent, type TestAgent } from './helpers.ts';

const running: TestAgent[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
});
afterAll(removeTempDirs);

async function linkedPair(): Promise<[TestAgent, TestAgent]> {
  const alice = await startAgent('alice');
  const bob = await startAgent('bob');
  running.push(alice, bob);
  await bob.links.acceptInvitation(alice.links.createInvitation({ ttlMs: 60_000 }));
  await eventually(() => alice.links.isLinked(bob.identity.agentId), 'linked');
  return [alice, bob];
}

const FRAME = 64 * 1024;

describe('links: the frame Transport', () => {
  it('carries a few MB both ways at once, in order and intact', async () => {
    const [alice, bob] = await linkedPair();
    const total = 4 * 1024 * 1024;
    const payloadA = randomBytes(total);
    const payloadB = randomBytes(total);
    const received = { alice: createHash('sha256'), bob: createHash('sha256') };
    const bytes = { alice: 0, bob: 0 };
    alice.links.transport.onFrame((_from, frame) => {
      received.alice.update(frame);
      bytes.alice += frame.length;
    });
    bob.links.transport.onFrame((_from, frame) => {
      received.bob.update(frame);
      bytes.bob += frame.length;
    });
    const pump = async (from: TestAgent, to: TestAgent, payload: Buffer) => {
      for (let at = 0; at < payload.length; at += FRAME) {
        await from.links.transport.send(to.identity.agentId, payload.subarray(at, at + FRAME));
      }
    };
    await Promise.all([pump(alice, bob, payloadA), pump(bob, alice, payloadB)]);
    await eventually(() => bytes.alice === total && bytes.bob === total, 'all bytes arrive');
    expect(received.bob.digest('hex')).toBe(createHash('sha256').update(payloadA).digest('hex'));
    expect(received.alice.digest('hex')).toBe(createHash('sha256').update(payloadB).digest('hex'));
  });

  it('holds the sender back while the receiver is busy (backpressure), then delivers everything', async () => {
    const [alice, bob] = await linkedPair();
    let release!: () => void;
    const busy = new Promise<void>((resolve) => (release = resolve));
    const seen: number[] = [];
    bob.links.transport.onFrame(async (_from, frame) => {
      seen.push(frame[0]);
      if (seen.length === 1) await busy;
    });
    const frames = 192; // 12 MiB
    let accepted = 0;
    const sending = (async () => {
      for (let i = 0; i < frames; i++) {
        const frame = Buffer.alloc(FRAME, i);
        await alice.links.transport.send(bob.identity.agentId, frame);
        accepted++;
      }
    })();
    await eventually(() => seen.length === 1, 'bob takes the first frame');
    // Time for the sender to run ahead if backpressure did not hold it (a loaded machine only
    // makes it run ahead less, so this wait cannot make the test fail).
    await sleep(1_000);
    // The receiver took one frame and stalled; yamux's window and the socket buffers hold a
    // bounded amount (the receive queue's high-water mark plus one yamux window), far below
    // the whole 12 MiB.
    expect(seen).toHaveLength(1);
    expect(accepted).toBeLessThan(64);
    release();
    await sending;
    await eventually(() => seen.length === frames, 'every frame arrives');
    expect(seen).toEqual(Array.from({ length: frames }, (_, i) => i % 256));
  });

  it('rejects oversized frames and frames to agents it has no link with', async () => {
    const [alice, bob] = await linkedPair();
    await expect(
      alice.links.transport.send(bob.identity.agentId, Buffer.alloc(MAX_FRAME_BYTES + 1)),
    ).rejects.toMatchObject({ code: 'ERR_FRAME_TOO_LARGE' });
    const stranger = await startAgent('carol');
    running.push(stranger);
    await expect(
      alice.links.transport.send(stranger.identity.agentId, Buffer.from('x')),
    ).rejects.toMatchObject({
      code: 'ERR_NO_LINK',
    });
    expect(alice.links.transport.neighbours()).toEqual([bob.identity.agentId]);
  });
});

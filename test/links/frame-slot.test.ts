import { describe, expect, it } from '@jest/globals';
import { FrameSlot, type FrameHandler } from '../../agent/links/frame-slot.ts';
import type { Transport } from '../../agent/transport.ts';
import { splitTransport } from '../../agent/sync/demux.ts';
import { SYNC_FRAME_TYPE } from '../../agent/sync/frames.ts';
import { WIRE_VERSION } from '../../agent/onion/wire.ts';
import { asAgentId } from '../../common/ids.ts';

const peer = asAgentId('12D3KooWGPrsb8WinUfXeUvf3eMGMYUCZ8YevJHBJkh2zHqkM8aq');

/** A link whose reader hands frames on one after the other, as LinkTransport.receive does. */
function fakeLink(): { transport: Transport; arrive: (frame: Uint8Array) => Promise<void> } {
  let handler: FrameHandler | undefined;
  let tail: Promise<void> = Promise.resolve();
  const transport: Transport = {
    self: peer,
    neighbours: () => [peer],
    send: async () => undefined,
    onFrame: (h) => (handler = h),
    onLinkChange: () => undefined,
  };
  return {
    transport,
    arrive: (frame) => (tail = tail.then(async () => void (await handler?.(peer, frame)))),
  };
}

/** Resolves once every settled promise callback has run (no timer involved). */
const settled = () => new Promise<void>((r) => setImmediate(r));

describe('links: frames that arrive before their receiver registered', () => {
  it('wait for it and reach it in order (a relay forgets what it handed on, so a dropped frame is lost)', async () => {
    const slot = new FrameSlot();
    const seen: number[] = [];
    const first = slot.deliver(peer, Uint8Array.of(1));
    const second = slot.deliver(peer, Uint8Array.of(2));
    let done = false;
    void Promise.all([first, second]).then(() => (done = true));
    await settled();
    expect(done).toBe(false);
    slot.set((_from, frame) => void seen.push(frame[0]));
    await Promise.all([first, second]);
    await slot.deliver(peer, Uint8Array.of(3));
    expect(seen).toEqual([1, 2, 3]);
  });

  it('split into the engine and sync: an early engine frame waits for the engine (test/agents/relay-restart)', async () => {
    const link = fakeLink();
    const { core, sync } = splitTransport(link.transport);
    const engine: number[] = [];
    const synced: number[] = [];
    sync.onFrame((_from, frame) => void synced.push(frame[2]));
    // A restarting node: its links are up and a neighbour hands on what it held before the
    // delivery engine registered (node.ts starts it after the gateway, streams and sync).
    const held = link.arrive(Uint8Array.of(WIRE_VERSION, 1, 7));
    let delivered = false;
    void held.then(() => (delivered = true));
    await settled();
    expect(delivered).toBe(false);
    core.onFrame((_from, frame) => void engine.push(frame[2]));
    await held;
    await link.arrive(Uint8Array.of(WIRE_VERSION, SYNC_FRAME_TYPE, 9));
    expect(engine).toEqual([7]);
    expect(synced).toEqual([9]);
  });
});

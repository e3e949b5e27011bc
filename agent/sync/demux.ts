import type { Transport } from '../transport.ts';
import { FrameSlot, type FrameHandler } from '../links/frame-slot.ts';
import { isSyncFrame } from './frames.ts';

/**
 * Splits one link transport into two: the delivery engine's and the sync engine's. Both send on
 * the same ordered link; incoming frames go to sync when their type byte says so (agent/sync/
 * frames.ts), to the engine otherwise, so the engine never sees (nor counts as unknown) a sync frame.
 * A frame that arrives before its receiver registered waits for it (FrameSlot: the engine starts
 * after the links are up).
 */
export function splitTransport(transport: Transport): { core: Transport; sync: Transport } {
  const core = new FrameSlot();
  const sync = new FrameSlot();
  transport.onFrame((from, frame) => (isSyncFrame(frame) ? sync : core).deliver(from, frame));
  const view = (set: (h: FrameHandler) => void): Transport => ({
    get self() {
      return transport.self;
    },
    neighbours: () => transport.neighbours(),
    send: (to, frame) => transport.send(to, frame),
    onFrame: set,
    onLinkChange: (handler) => transport.onLinkChange(handler),
  });
  return { core: view((h) => core.set(h)), sync: view((h) => sync.set(h)) };
}

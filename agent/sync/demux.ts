import type { AgentId } from '../../common/ids.ts';
import type { Transport } from '../transport.ts';
import { isSyncFrame } from './frames.ts';

type FrameHandler = (from: AgentId, frame: Uint8Array) => void | Promise<void>;

/**
 * Splits one link transport into two: the delivery engine's and the sync engine's. Both send on
 * the same ordered link; incoming frames go to sync when their type byte says so (agent/sync/
 * frames.ts), to the engine otherwise, so the engine never sees (nor counts as unknown) a sync frame.
 */
export function splitTransport(transport: Transport): { core: Transport; sync: Transport } {
  let core: FrameHandler | undefined;
  let sync: FrameHandler | undefined;
  transport.onFrame((from, frame) => (isSyncFrame(frame) ? sync?.(from, frame) : core?.(from, frame)));
  const view = (set: (h: FrameHandler) => void): Transport => ({
    get self() {
      return transport.self;
    },
    neighbours: () => transport.neighbours(),
    send: (to, frame) => transport.send(to, frame),
    onFrame: set,
    onLinkChange: (handler) => transport.onLinkChange(handler),
  });
  return { core: view((h) => (core = h)), sync: view((h) => (sync = h)) };
}

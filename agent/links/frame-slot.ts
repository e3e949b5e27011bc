import type { AgentId } from '../../common/ids.ts';

export type FrameHandler = (from: AgentId, frame: Uint8Array) => void | Promise<void>;

/**
 * The receiver of incoming frames, which may be registered after the first frame arrived.
 *
 * Why: a node's links come up (and neighbours send) while the node is still starting: the
 * delivery engine registers its handler only once the gateway, streams and sync have started. A
 * frame that arrived before then used to be dropped, yet its sender had been told the link took
 * it and forgot it: a relay that hands on what it held after a restart deletes each packet once
 * send() resolved, so a held message that met a restarting recipient was lost for good
 * (test/agents/relay-restart). Delivering waits for the handler instead; the reader awaits it, so
 * the link's backpressure holds and order is kept.
 */
export class FrameSlot {
  private handler: FrameHandler | undefined;
  private waiting: Promise<FrameHandler> | undefined;
  private resolve: ((handler: FrameHandler) => void) | undefined;

  set(handler: FrameHandler): void {
    this.handler = handler;
    this.resolve?.(handler);
    this.resolve = undefined;
    this.waiting = undefined;
  }

  /** Hands the frame to the handler, once there is one. */
  async deliver(from: AgentId, frame: Uint8Array): Promise<void> {
    const handler =
      this.handler ?? (await (this.waiting ??= new Promise<FrameHandler>((r) => (this.resolve = r))));
    await handler(from, frame);
  }
}

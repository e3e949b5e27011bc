import type { AgentId } from '../common/ids.ts';

/**
 * What the protocol core (discovery, routing, onion, reports, complaints) needs from the
 * network: framed messages to and from linked neighbours. agent/links implements it over
 * libp2p; the simulator implements it in memory. The core never imports libp2p.
 */
export interface Transport {
  /** This agent's id. */
  readonly self: AgentId;
  /** Neighbours with an open, authenticated link right now. */
  neighbours(): AgentId[];
  /**
   * Hands one frame to a neighbour's link, in order per neighbour. Resolves when the link
   * accepted it (backpressure: awaiting keeps memory bounded); rejects with a KithError
   * ERR_NO_LINK when the neighbour cannot be reached now.
   */
  send(to: AgentId, frame: Uint8Array): Promise<void>;
  /** Registers the single receiver of incoming frames; `from` is the authenticated neighbour. */
  onFrame(handler: (from: AgentId, frame: Uint8Array) => void | Promise<void>): void;
  /** Called when a neighbour's link opens or closes (to retry held messages, drop caches). */
  onLinkChange(handler: (peer: AgentId, up: boolean) => void): void;
  /**
   * Work a frame's handler started and did not await (a relay's packet waiting for its group
   * commit): the simulator counts it as in flight, so that its idle() waits for it too.
   */
  track?(work: Promise<unknown>): void;
}

/** Largest frame a transport must carry; bulk payloads are chunked below it. */
export const MAX_FRAME_BYTES = 1024 * 1024;

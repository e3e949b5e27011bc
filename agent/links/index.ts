import { LinkManager } from './links.ts';
import type { LinksOptions } from './types.ts';

export { LinkManager } from './links.ts';
export { LinkTransport, FRAMES_PROTOCOL } from './transport.ts';
export { HELLO_PROTOCOL, type HelloMessage } from './hello.ts';
export { INVITE_PROTOCOL } from './invite.ts';
export { createGater } from './gater.ts';
export type { NodeExtras, KithLibp2p } from './node.ts';
export { encodeFrame, FrameDecoder, readFrames, writeFrame } from './frames.ts';
export type { AddressBook, ContactView, Links, LinksOptions } from './types.ts';

/** Builds the link layer of one agent; call start() to listen and stop() to close every link. */
export function createLinks(options: LinksOptions): LinkManager {
  return new LinkManager(options);
}

import { openChunk, sealChunk } from './chunks.ts';

/**
 * The chunk index of a *cancel unit* (docs/protocol.md 7.9, since r39): the sender's word that a
 * chunked message will never be completed. Sealed like a chunk under the message's content key,
 * which only the sender's signed, encrypted manifest carries: no relay sees that key and no other
 * agent has it, so nobody but the sender (and the recipient itself) can make one; the AAD binds it
 * to the message id and chunk count, so it cannot be moved to another transfer. Any index an
 * agent before r39 meets as "oversize" and drops.
 */
export const CANCEL_INDEX = 0xffff_ffff;

/** Longest reason text a cancel carries (UTF-8 bytes; longer ones are cut). */
export const CANCEL_REASON_MAX = 512;

/** Seals the cancel unit of message `id` (of `chunks` data chunks) with the reason the sender gives. */
export function sealCancel(key: Buffer, id: Buffer, chunks: number, reason: string): Buffer {
  const text = Buffer.from(reason, 'utf8').subarray(0, CANCEL_REASON_MAX);
  return sealChunk(key, id, CANCEL_INDEX, chunks, text);
}

/** The reason of a cancel unit; throws ERR_CHUNK_FORGED when it does not authenticate under `key`. */
export function openCancel(key: Buffer, id: Buffer, chunks: number, sealed: Uint8Array): string {
  return openChunk(key, id, CANCEL_INDEX, chunks, sealed).toString('utf8');
}

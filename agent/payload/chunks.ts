import { createCipheriv, createDecipheriv } from 'node:crypto';
import { KithError } from '../../common/errors.ts';

/** Plaintext bytes per chunk: a sealed chunk plus its unit header fills a 256 KiB body exactly-ish. */
export const CHUNK_BYTES = 256 * 1024 - 64;
/** Payloads up to this size travel inside the manifest (one packet). */
export const INLINE_MAX = 60_000;

function nonceAad(id: Buffer, index: number, chunks: number, length: number): { nonce: Buffer; aad: Buffer } {
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32BE(index, 8);
  const aad = Buffer.alloc(28);
  id.copy(aad, 0);
  aad.writeUInt32BE(index, 16);
  aad.writeUInt32BE(chunks, 20);
  aad.writeUInt32BE(length, 24);
  return { nonce, aad };
}

/**
 * Seals chunk `index` of `chunks` with the content key. The message id, index, count and length
 * are authenticated, so a chunk cannot be moved, truncated or spliced into another message.
 */
export function sealChunk(key: Buffer, id: Buffer, index: number, chunks: number, data: Uint8Array): Buffer {
  const { nonce, aad } = nonceAad(id, index, chunks, data.length);
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  cipher.setAAD(aad, { plaintextLength: data.length });
  return Buffer.concat([cipher.update(data), cipher.final(), cipher.getAuthTag()]);
}

/** Opens a sealed chunk; throws ERR_CHUNK_FORGED when it was altered, truncated or misplaced. */
export function openChunk(
  key: Buffer,
  id: Buffer,
  index: number,
  chunks: number,
  sealed: Uint8Array,
): Buffer {
  if (sealed.length < 16) throw new KithError('ERR_CHUNK_TRUNCATED', 'chunk shorter than its tag');
  const length = sealed.length - 16;
  const { nonce, aad } = nonceAad(id, index, chunks, length);
  try {
    const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    decipher.setAAD(aad, { plaintextLength: length });
    decipher.setAuthTag(sealed.subarray(length));
    return Buffer.concat([decipher.update(sealed.subarray(0, length)), decipher.final()]);
  } catch {
    throw new KithError('ERR_CHUNK_FORGED', `chunk ${index} does not authenticate`);
  }
}

/** Expected plaintext length of chunk `index` (the last one carries the remainder). */
export function chunkLength(size: number, chunkSize: number, index: number): number {
  return Math.min(chunkSize, size - index * chunkSize);
}

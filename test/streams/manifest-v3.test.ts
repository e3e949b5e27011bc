import { describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { isKithError } from '../../common/errors.ts';
import { asFingerprint, asMessageId } from '../../common/ids.ts';
import { CHUNK_BYTES, openChunk, sealChunk } from '../../agent/payload/chunks.ts';
import { decodeManifest, encodeManifest, unitCount, type Manifest } from '../../agent/payload/manifest.ts';
import { dataChunks, hashUnitIndex } from '../../agent/delivery/outbox-record.ts';

const FPR = asFingerprint('AB'.repeat(20));
const base = {
  id: asMessageId('0123456789abcdef0123456789abcdef'),
  from: FPR,
  to: FPR,
  size: 3 * CHUNK_BYTES + 10,
  chunkSize: CHUNK_BYTES,
  chunks: 4,
  contentKey: randomBytes(32).toString('base64url'),
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isKithError(err) ? err.code : String(err);
  }
  return undefined;
}

describe('manifest version 3 (docs/protocol.md 7.8, 7.9)', () => {
  test('a version 1 manifest, as agents before r33 send it, is still read, its hash required', () => {
    const v1: Manifest = { v: 1, ...base, sha256: 'ab'.repeat(32) };
    const { manifest } = decodeManifest(encodeManifest(v1));
    expect(manifest).toEqual(v1);
    expect(unitCount(manifest)).toBe(4);
    const { sha256: _, ...noHash } = v1;
    expect(codeOf(() => decodeManifest(encodeManifest(noHash as Manifest)))).toBe('ERR_MANIFEST_MALFORMED');
  });

  test('version 3 names no hash and travels in one unit more: the hash unit', () => {
    const v3: Manifest = { v: 3, ...base };
    const { manifest } = decodeManifest(encodeManifest(v3));
    expect(manifest.sha256).toBeUndefined();
    expect(unitCount(manifest)).toBe(5);
    // The recipient's stored copy, with the hash the hash unit brought, reads back.
    const stored = decodeManifest(encodeManifest({ ...v3, sha256: 'cd'.repeat(32) })).manifest;
    expect(stored.sha256).toBe('cd'.repeat(32));
    // Never inline; a malformed hash is refused; an unknown version too.
    expect(
      codeOf(() =>
        decodeManifest(encodeManifest({ ...v3, size: 5, chunkSize: 0, chunks: 0 }, Buffer.alloc(5))),
      ),
    ).toBe('ERR_MANIFEST_MALFORMED');
    expect(codeOf(() => decodeManifest(encodeManifest({ ...v3, sha256: 'xyz' })))).toBe(
      'ERR_MANIFEST_MALFORMED',
    );
    expect(codeOf(() => decodeManifest(encodeManifest({ ...v3, v: 4 as 3 })))).toBe('ERR_MANIFEST_MALFORMED');
  });

  test("the sender's record tells a v3 hash unit from the chunks by its unit count", () => {
    expect(hashUnitIndex({ size: base.size, chunkSize: CHUNK_BYTES, chunks: 5 })).toBe(4);
    expect(hashUnitIndex({ size: base.size, chunkSize: CHUNK_BYTES, chunks: 4 })).toBeUndefined();
    expect(dataChunks({ size: base.size, chunkSize: CHUNK_BYTES, chunks: 5 })).toBe(4);
    expect(hashUnitIndex({ size: 100, chunkSize: 0, chunks: 0 })).toBeUndefined();
  });

  test('the hash unit is sealed as chunk `chunks` of `chunks`: it opens only there', () => {
    const key = randomBytes(32);
    const id = Buffer.from(base.id, 'hex');
    const digest = randomBytes(32);
    const sealed = sealChunk(key, id, 4, 4, digest);
    expect(openChunk(key, id, 4, 4, sealed).equals(digest)).toBe(true);
    // Not as the last chunk, nor under another count or message: the AAD names index and count.
    expect(codeOf(() => openChunk(key, id, 3, 4, sealed))).toBe('ERR_CHUNK_FORGED');
    expect(codeOf(() => openChunk(key, id, 4, 5, sealed))).toBe('ERR_CHUNK_FORGED');
    expect(codeOf(() => openChunk(key, randomBytes(16), 4, 4, sealed))).toBe('ERR_CHUNK_FORGED');
  });
});

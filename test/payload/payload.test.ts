import { describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { isKithError } from '../../common/errors.ts';
import { type Fingerprint, type MessageId } from '../../common/ids.ts';
import { CHUNK_BYTES, chunkLength, openChunk, sealChunk } from '../../agent/payload/chunks.ts';
import { openpgpCodec } from '../../agent/payload/codec.ts';
import { decodeManifest, encodeManifest, type Manifest } from '../../agent/payload/manifest.ts';
import { BODY_CLASSES, decodeUnit, encodeUnit } from '../../agent/payload/unit.ts';
import { ChunkBitmap } from '../../agent/payload/spool.ts';
import { testEntityKey } from '../helpers/entity-key.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isKithError(err) ? err.code : String(err);
  }
  return undefined;
}

const entity = (name: string) => testEntityKey(`${name}@example.org`, name);

describe('end-to-end seal (OpenPGP)', () => {
  test('only the recipient opens it, and it names and proves the sender', async () => {
    const [alice, bob, eve] = await Promise.all([entity('alice'), entity('bob'), entity('eve')]);
    const directory = new Map<Fingerprint, openpgp.PublicKey>([
      [alice.fpr, alice.key.toPublic()],
      [bob.fpr, bob.key.toPublic()],
    ]);
    const lookup = async (f: Fingerprint) => directory.get(f);
    const mail = Buffer.from('From: alice@example.org\r\nSubject: x\r\n\r\nbody\r\n');
    const sealed = await openpgpCodec({ entityKey: alice.key, publicKey: lookup }).seal(mail, bob.fpr);
    const opened = await openpgpCodec({ entityKey: bob.key, publicKey: lookup }).open(sealed);
    expect(opened.plaintext.equals(mail)).toBe(true);
    expect(opened.sender).toBe(alice.fpr);
    expect(opened.verified).toBe(true);
    await expect(openpgpCodec({ entityKey: eve.key, publicKey: lookup }).open(sealed)).rejects.toMatchObject({
      code: 'ERR_PAYLOAD_UNDECRYPTABLE',
    });
    // Eve claims to be Alice: the fingerprint says Alice, the signature does not verify.
    const forged = await openpgpCodec({ entityKey: eve.key, publicKey: lookup }).seal(mail, bob.fpr);
    Buffer.from(alice.fpr, 'hex').copy(forged, 0);
    const opened2 = await openpgpCodec({ entityKey: bob.key, publicKey: lookup }).open(forged);
    expect(opened2.verified).toBe(false);
  });
});

describe('manifest, chunks, units', () => {
  const id = randomBytes(16);
  const key = randomBytes(32);

  test('a manifest round-trips with its inline payload and refuses inconsistent shapes', () => {
    const m: Manifest = {
      v: 1,
      id: id.toString('hex') as MessageId,
      from: 'A'.repeat(40) as Fingerprint,
      to: 'B'.repeat(40) as Fingerprint,
      size: 5,
      chunkSize: 0,
      chunks: 0,
      contentKey: key.toString('base64url'),
      sha256: '0'.repeat(64),
    };
    const { manifest, inline } = decodeManifest(encodeManifest(m, Buffer.from('hello')));
    expect(manifest).toEqual(m);
    expect(inline.toString()).toBe('hello');
    expect(codeOf(() => decodeManifest(encodeManifest(m, Buffer.from('hell'))))).toBe(
      'ERR_MANIFEST_MALFORMED',
    );
    expect(codeOf(() => decodeManifest(encodeManifest({ ...m, size: 10, chunks: 2, chunkSize: 4 })))).toBe(
      'ERR_MANIFEST_MALFORMED',
    );
  });

  test('a chunk authenticates its message, position, count and length', () => {
    const data = randomBytes(1000);
    const sealed = sealChunk(key, id, 3, 10, data);
    expect(openChunk(key, id, 3, 10, sealed).equals(data)).toBe(true);
    expect(codeOf(() => openChunk(key, id, 4, 10, sealed))).toBe('ERR_CHUNK_FORGED');
    expect(codeOf(() => openChunk(key, id, 3, 11, sealed))).toBe('ERR_CHUNK_FORGED');
    expect(codeOf(() => openChunk(key, randomBytes(16), 3, 10, sealed))).toBe('ERR_CHUNK_FORGED');
    expect(codeOf(() => openChunk(key, id, 3, 10, sealed.subarray(1)))).toBe('ERR_CHUNK_FORGED');
    const flipped = Buffer.from(sealed);
    flipped[5] ^= 1;
    expect(codeOf(() => openChunk(key, id, 3, 10, flipped))).toBe('ERR_CHUNK_FORGED');
    expect(chunkLength(CHUNK_BYTES * 2 + 5, CHUNK_BYTES, 2)).toBe(5);
  });

  test('units are padded to a size class; a full chunk fits the largest', () => {
    const full = encodeUnit({
      kind: 'chunk',
      id,
      index: 0,
      sealed: sealChunk(key, id, 0, 1, randomBytes(CHUNK_BYTES)),
    });
    expect(full.length).toBe(BODY_CLASSES[BODY_CLASSES.length - 1]);
    const small = encodeUnit({ kind: 'manifest', id, sealed: randomBytes(10) });
    expect(small.length).toBe(BODY_CLASSES[0]);
    const decoded = decodeUnit(small);
    expect(decoded.kind).toBe('manifest');
    expect(decoded.sealed.length).toBe(10);
    expect(codeOf(() => decodeUnit(Buffer.alloc(10)))).toBe('ERR_UNIT_MALFORMED');
  });

  test('the chunk bitmap acknowledges the contiguous prefix', () => {
    const b = new ChunkBitmap(20);
    for (const i of [0, 1, 2, 5, 19]) b.set(i);
    expect(b.contiguous()).toBe(3);
    const restored = new ChunkBitmap(20, Buffer.from(b.bits));
    expect(restored.has(19)).toBe(true);
  });
});

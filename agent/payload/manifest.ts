import { KithError } from '../../common/errors.ts';
import { asFingerprint, asMessageId, type Fingerprint, type MessageId } from '../../common/ids.ts';

/**
 * The manifest (docs/protocol.md, "Manifest"): the only part sealed with OpenPGP. It carries the
 * content key and the shape of the chunked body, or, for small payloads, the payload itself.
 *
 * Version 1 names the whole payload's SHA-256, so the sender reads the whole payload before the
 * manifest can leave. Version 3 (chunked payloads only, docs/protocol.md 7.9) leaves it out: the
 * hash travels last, in the hash unit (chunk index `chunks`), computed as the chunks are read, so
 * a huge file's first chunks leave at once. The recipient's stored copy of a v3 manifest gains the
 * `sha256` once the hash unit is stored.
 */
export interface Manifest {
  v: 1 | 3;
  id: MessageId;
  from: Fingerprint;
  to: Fingerprint;
  /** Payload bytes. */
  size: number;
  /** Bytes of plaintext per chunk (the last may be shorter); 0 when inline. */
  chunkSize: number;
  /** Number of chunks; 0: the payload is inline in the manifest. */
  chunks: number;
  /** base64url of the 32-byte ChaCha20-Poly1305 key of the chunks. */
  contentKey: string;
  /**
   * Hex SHA-256 of the whole payload, checked once it is assembled. Always in v1; never in a v3
   * manifest as sent (the hash unit brings it), present in the recipient's stored copy after.
   */
  sha256?: string;
}

/** Units a chunked payload travels in: its chunks, and for v3 the hash unit after them. */
export function unitCount(m: Pick<Manifest, 'v' | 'chunks'>): number {
  return m.v === 3 ? m.chunks + 1 : m.chunks;
}

/** u32 length of the JSON | JSON | inline payload bytes. */
export function encodeManifest(m: Manifest | SharedManifest, inline: Uint8Array = Buffer.alloc(0)): Buffer {
  const json = Buffer.from(JSON.stringify(m));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return Buffer.concat([len, json, inline]);
}

/**
 * Manifest version 2, the shared body of a list post (docs/protocol.md 7.8, "Version 2"): signed
 * and encrypted once for every copy, so it names neither a message id nor a recipient (each copy
 * has its own id in its unit and its own PKESK packets before the shared SEIPD). Inline only: the
 * payload follows the JSON, as in version 1.
 */
export interface SharedManifest {
  v: 2;
  /** Hex of 16 random bytes naming the shared body (the same in every copy of one post). */
  body: string;
  from: Fingerprint;
  size: number;
  sha256: string;
}

/** The largest inline payload of a version-2 manifest, as of version 1 (INLINE_MAX, chunks.ts). */
const SHARED_INLINE_MAX = 60_000;

/**
 * A manifest of any version: what the receiver opens. Versions 1 and 3 through decodeManifest;
 * version 2 checked here (its inline payload ≤ 60,000 bytes and of the stated size).
 */
export function decodeAnyManifest(
  buf: Buffer,
): { manifest: Manifest; inline: Buffer } | { manifest: SharedManifest; inline: Buffer } {
  let v: unknown;
  try {
    const len = buf.readUInt32BE(0);
    if (len <= 4096 && 4 + len <= buf.length)
      v = (JSON.parse(buf.subarray(4, 4 + len).toString('utf8')) as { v?: unknown }).v;
  } catch {
    v = undefined; // decodeManifest says what is wrong
  }
  if (v !== 2) return decodeManifest(buf);
  try {
    const len = buf.readUInt32BE(0);
    const m = JSON.parse(buf.subarray(4, 4 + len).toString('utf8')) as SharedManifest;
    if (typeof m.body !== 'string' || !/^[0-9a-f]{32}$/.test(m.body)) throw new Error('bad body id');
    asFingerprint(m.from);
    if (!Number.isSafeInteger(m.size) || m.size < 0 || m.size > SHARED_INLINE_MAX)
      throw new Error('bad size');
    if (typeof m.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(m.sha256)) throw new Error('bad hash');
    const inline = buf.subarray(4 + len);
    if (inline.length !== m.size) throw new Error('inline payload has the wrong size');
    return { manifest: { v: 2, body: m.body, from: m.from, size: m.size, sha256: m.sha256 }, inline };
  } catch (err) {
    throw new KithError('ERR_MANIFEST_MALFORMED', `malformed manifest: ${(err as Error).message}`);
  }
}

export function decodeManifest(buf: Buffer): { manifest: Manifest; inline: Buffer } {
  try {
    const len = buf.readUInt32BE(0);
    if (len > 4096 || 4 + len > buf.length) throw new Error('bad length');
    const m = JSON.parse(buf.subarray(4, 4 + len).toString('utf8')) as Manifest;
    if (m.v !== 1 && m.v !== 3) throw new Error('unknown version');
    asMessageId(m.id);
    asFingerprint(m.from);
    asFingerprint(m.to);
    for (const n of [m.size, m.chunkSize, m.chunks])
      if (!Number.isSafeInteger(n) || n < 0) throw new Error('bad number');
    if (Buffer.from(m.contentKey, 'base64url').length !== 32) throw new Error('bad content key');
    if (m.v === 1 || m.sha256 !== undefined) {
      if (typeof m.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(m.sha256)) throw new Error('bad hash');
    }
    if (m.v === 3 && m.chunks === 0) throw new Error('a version 3 manifest is never inline');
    const inline = buf.subarray(4 + len);
    if (m.chunks === 0 && inline.length !== m.size) throw new Error('inline payload has the wrong size');
    if (m.chunks > 0 && (m.chunkSize === 0 || Math.ceil(m.size / m.chunkSize) !== m.chunks)) {
      throw new Error('chunk count does not match the size');
    }
    return { manifest: m, inline };
  } catch (err) {
    throw new KithError('ERR_MANIFEST_MALFORMED', `malformed manifest: ${(err as Error).message}`);
  }
}

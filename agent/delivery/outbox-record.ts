import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { KithError } from '../../common/errors.ts';
import type { Fingerprint, MessageId } from '../../common/ids.ts';
import { CHUNK_BYTES, INLINE_MAX } from '../payload/chunks.ts';
import type { PayloadCodec } from '../payload/codec.ts';
import { encodeManifest, unitCount, type Manifest, type SharedManifest } from '../payload/manifest.ts';
import type { SessionKey } from '../payload/wrap.ts';
import { bytesSource, fileSource, inPlaceSource, type PayloadSource } from '../payload/source.ts';
import { MAX_BODY } from '../payload/unit.ts';
import type { EngineContext } from './context.ts';
import type { OutboxRecord } from './store.ts';

/** What a caller hands to send(). */
export interface OutboundPayload {
  id: MessageId;
  to: Fingerprint;
  /** A file that stays until delivery ends (mail: the RFC 5322 message), bytes, or a file in place. */
  source: OutboxRecord['source'];
  /** Wrap-once: this copy shares a body made by sealSharedBody (the payload is that body's). */
  shared?: SharedBody;
}

/**
 * A list post signed and encrypted once (manifest version 2, docs/protocol.md 7.8): the SEIPD
 * packet in a file of its own, and the session key each copy wraps for its recipient. The session
 * key lives in memory only; a restarted list makes a new shared body for the copies it still has
 * to hand over (those handed over keep theirs: their rows name the file).
 */
export interface SharedBody {
  /** Hex of 16 random bytes: the manifest's `body`. */
  id: string;
  /** The file holding the SEIPD packet, written once. */
  path: string;
  sessionKey: SessionKey;
  /** Payload bytes and their SHA-256 (hex), as in the manifest. */
  size: number;
  sha256: string;
  /** Bytes of the SEIPD packet. */
  bytes: number;
}

/**
 * Signs and encrypts a small payload once for any number of copies (wrap-once): the version-2
 * manifest with the payload inline, sealed by the codec's sealShared, written to `bodyPath`.
 * Throws ERR_WRAP_ONCE_UNAVAILABLE for a payload too large to travel inline (over 60,000 bytes:
 * chunks are bound to each copy's message id, 7.9) or a codec that cannot, so the caller seals
 * each copy whole instead.
 */
export async function sealSharedBody(
  ctx: Pick<EngineContext, 'trust'>,
  codec: PayloadCodec,
  rawPath: string,
  bodyPath: string,
): Promise<SharedBody> {
  if (!codec.sealShared || !codec.wrapShared)
    throw new KithError('ERR_WRAP_ONCE_UNAVAILABLE', 'this codec seals each copy whole');
  const payload = await readFile(rawPath);
  if (payload.length > INLINE_MAX)
    throw new KithError(
      'ERR_WRAP_ONCE_UNAVAILABLE',
      `a ${payload.length}-byte payload does not travel inline`,
    );
  const manifest: SharedManifest = {
    v: 2,
    body: randomBytes(16).toString('hex'),
    from: ctx.trust.self,
    size: payload.length,
    sha256: createHash('sha256').update(payload).digest('hex'),
  };
  const { sessionKey, body } = await codec.sealShared(encodeManifest(manifest, payload));
  await writeFile(bodyPath, body, { mode: 0o600 });
  return {
    id: manifest.body,
    path: bodyPath,
    sessionKey,
    size: payload.length,
    sha256: manifest.sha256,
    bytes: body.length,
  };
}

/** A copy of a shared body: its head for `to` only, and a reference to the body's file. */
async function sharedOutboxRecord(
  ctx: EngineContext,
  codec: PayloadCodec,
  payload: OutboundPayload,
  shared: SharedBody,
): Promise<OutboxRecord> {
  const head = await codec.wrapShared!(shared.sessionKey, payload.to);
  return outboxRecord(ctx, payload, head, {
    size: shared.size,
    sharedBody: shared,
    contentKey: Buffer.alloc(32), // no chunks: nothing is sealed with it
    chunks: 0,
    chunkSize: 0,
  });
}

/** A manifest unit's own header (kind, message id, length: agent/payload/unit.ts encodeUnit). */
const MANIFEST_UNIT_HEAD = 21;

/**
 * The outbox record of a copy whose manifest is sealed (`head`; with a shared body, the copy's
 * wrapped session key, the body travelling after it in the same unit): refused when the manifest
 * unit would not fit the largest body class. Both ways of sealing (each copy whole, wrap-once)
 * build their record here.
 */
function outboxRecord(
  ctx: EngineContext,
  payload: OutboundPayload,
  head: Buffer,
  sealed: Pick<OutboxRecord, 'size' | 'contentKey' | 'chunks' | 'chunkSize'> & { sharedBody?: SharedBody },
): OutboxRecord {
  const { sharedBody, ...units } = sealed;
  if (head.length + (sharedBody?.bytes ?? 0) + MANIFEST_UNIT_HEAD > MAX_BODY)
    throw new KithError('ERR_MANIFEST_TOO_LARGE', 'sealed manifest too large');
  const now = ctx.now();
  return {
    id: payload.id,
    to: payload.to,
    source: payload.source,
    ...units,
    sealedManifest: head,
    ...(sharedBody ? { sharedBody: sharedBody.path } : {}),
    acked: 0,
    state: 'pending',
    createdAt: now,
    deadline: now + ctx.options.maxAgeMs,
  };
}

/** Opens what a payload or a stored record names: its file, its bytes, or a file in place. */
export async function openSource(source: OutboundPayload['source']): Promise<PayloadSource> {
  if (source.kind === 'in-place') return inPlaceSource(source);
  return source.kind === 'file' ? fileSource(source.path) : bytesSource(source.data);
}

/**
 * A new message's outbox record: seals the manifest (with the body inline when it is small) to
 * the recipient. Writes nothing. A chunked payload gets a version 3 manifest, which names no
 * whole-payload hash: nothing but its size is read here, the hash is computed as the chunks are
 * read for sending and travels last (the hash unit, docs/protocol.md 7.9). Why: hashing first made
 * a 1 GiB file's first chunk wait for a whole pass over the file (bench/RESULTS.md 11.1).
 */
export async function sealOutboxRecord(
  ctx: EngineContext,
  codec: PayloadCodec,
  payload: OutboundPayload,
): Promise<OutboxRecord> {
  if (payload.shared && codec.wrapShared) return sharedOutboxRecord(ctx, codec, payload, payload.shared);
  const source = await openSource(payload.source);
  try {
    const contentKey = randomBytes(32);
    const inline = source.size <= INLINE_MAX;
    const body = inline ? await source.read(0, source.size) : undefined;
    const chunks = inline ? 0 : Math.ceil(source.size / CHUNK_BYTES);
    const manifest: Manifest = {
      v: inline ? 1 : 3,
      id: payload.id,
      from: ctx.trust.self,
      to: payload.to,
      size: source.size,
      chunkSize: inline ? 0 : CHUNK_BYTES,
      chunks,
      contentKey: contentKey.toString('base64url'),
      // An inline payload is read once and hashed from memory.
      ...(body ? { sha256: createHash('sha256').update(body).digest('hex') } : {}),
    };
    const plain = encodeManifest(manifest, body);
    const sealedManifest = await codec.seal(plain, payload.to);
    return outboxRecord(ctx, payload, sealedManifest, {
      size: source.size,
      contentKey,
      // The units to send: a v3 manifest's chunks and its hash unit (hashUnitIndex tells them apart).
      chunks: unitCount(manifest),
      chunkSize: manifest.chunkSize,
    });
  } finally {
    await source.close();
  }
}

/** Chunks of a record's payload (the units minus a hash unit). */
export function dataChunks(rec: Pick<OutboxRecord, 'size' | 'chunkSize' | 'chunks'>): number {
  return rec.chunkSize === 0 ? 0 : Math.ceil(rec.size / rec.chunkSize);
}

/**
 * The index of a record's hash unit, or undefined for a record sealed with a v1 manifest (before
 * r33, or inline). Why from the counts: a v3 record has one unit more than its payload has chunks,
 * so records stored before r33 resume unchanged and the outbox table needs no new column.
 */
export function hashUnitIndex(rec: Pick<OutboxRecord, 'size' | 'chunkSize' | 'chunks'>): number | undefined {
  const n = dataChunks(rec);
  return rec.chunks > n ? n : undefined;
}

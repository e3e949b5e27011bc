import { createHash, randomBytes } from 'node:crypto';
import { KithError } from '../../common/errors.ts';
import type { Fingerprint, MessageId } from '../../common/ids.ts';
import { CHUNK_BYTES, INLINE_MAX } from '../payload/chunks.ts';
import type { PayloadCodec } from '../payload/codec.ts';
import { encodeManifest, type Manifest } from '../payload/manifest.ts';
import { bytesSource, fileSource, type PayloadSource } from '../payload/source.ts';
import { MAX_BODY } from '../payload/unit.ts';
import type { EngineContext } from './context.ts';
import type { OutboxRecord } from './store.ts';

/** What a caller hands to send(). */
export interface OutboundPayload {
  id: MessageId;
  to: Fingerprint;
  /** A file that stays until delivery ends (mail: the RFC 5322 message), or bytes. */
  source: { kind: 'file'; path: string } | { kind: 'bytes'; data: Buffer };
}

/** Opens what a payload or a stored record names: its file, or its bytes. */
export async function openSource(source: OutboundPayload['source']): Promise<PayloadSource> {
  return source.kind === 'file' ? fileSource(source.path) : bytesSource(source.data);
}

/**
 * A new message's outbox record: reads the payload, hashes it and seals the manifest (with the
 * body inline when it is small) to the recipient. Writes nothing.
 */
export async function sealOutboxRecord(
  ctx: EngineContext,
  codec: PayloadCodec,
  payload: OutboundPayload,
): Promise<OutboxRecord> {
  const source = await openSource(payload.source);
  try {
    const contentKey = randomBytes(32);
    const inline = source.size <= INLINE_MAX;
    const body = inline ? await source.read(0, source.size) : undefined;
    const manifest: Manifest = {
      v: 1,
      id: payload.id,
      from: ctx.trust.self,
      to: payload.to,
      size: source.size,
      chunkSize: inline ? 0 : CHUNK_BYTES,
      chunks: inline ? 0 : Math.ceil(source.size / CHUNK_BYTES),
      contentKey: contentKey.toString('base64url'),
      // An inline payload is read once and hashed from memory: no second pass over the file.
      sha256: body ? createHash('sha256').update(body).digest('hex') : await source.sha256(),
    };
    const plain = encodeManifest(manifest, body);
    const sealedManifest = await codec.seal(plain, payload.to);
    if (sealedManifest.length + 21 > MAX_BODY)
      throw new KithError('ERR_MANIFEST_TOO_LARGE', 'sealed manifest too large');
    const now = ctx.now();
    return {
      id: payload.id,
      to: payload.to,
      source: payload.source,
      size: source.size,
      sealedManifest,
      contentKey,
      chunks: manifest.chunks,
      chunkSize: manifest.chunkSize,
      acked: 0,
      state: 'pending',
      createdAt: now,
      deadline: now + ctx.options.maxAgeMs,
    };
  } finally {
    await source.close();
  }
}

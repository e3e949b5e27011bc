import type { Stream } from '@libp2p/interface';
import { KithError } from '../../common/errors.ts';

/** 4-byte big-endian length, then the payload (docs/protocol.md, "Frames"). */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

/**
 * Reassembles length-prefixed frames from arbitrary chunks. A declared length above `maxBytes`
 * is a protocol violation (ERR_FRAME_TOO_LARGE): the link is cut before any memory is spent on it.
 */
export class FrameDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Uint8Array): Uint8Array[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Uint8Array[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const header = this.peek(4);
      const length = new DataView(header.buffer, header.byteOffset, 4).getUint32(0);
      if (length > this.maxBytes) {
        throw new KithError('ERR_FRAME_TOO_LARGE', `a frame of ${length} bytes exceeds ${this.maxBytes}`);
      }
      if (this.buffered < 4 + length) break;
      this.take(4);
      frames.push(this.take(length));
    }
    return frames;
  }

  private peek(n: number): Uint8Array {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.chunks) {
      const part = c.subarray(0, n - at);
      out.set(part, at);
      at += part.length;
      if (at === n) break;
    }
    return out;
  }

  private take(n: number): Uint8Array {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return out;
    }
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const part = c.subarray(0, n - at);
      out.set(part, at);
      at += part.length;
      if (part.length === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(part.length);
    }
    return out;
  }
}

/** Yields the frames arriving on a stream; the consumer's pace is the sender's pace (backpressure). */
export async function* readFrames(stream: Stream, maxBytes: number): AsyncGenerator<Uint8Array> {
  const decoder = new FrameDecoder(maxBytes);
  for await (const chunk of stream) {
    for (const frame of decoder.push(chunk.subarray())) yield frame;
  }
}

/** Bytes a stream may hold unsent before writeFrame waits (pipelining without unbounded memory). */
const WRITE_HIGH_WATER = 256 * 1024;

/**
 * Writes one frame and waits while the stream holds more than WRITE_HIGH_WATER unsent bytes.
 * Not `stream.onDrain()`: in @libp2p/utils 7.4 its promise is never reset after the first
 * 'drain', so every later call resolves at once and the write buffer grows without bound.
 */
export async function writeFrame(stream: Stream, payload: Uint8Array, signal?: AbortSignal): Promise<void> {
  stream.send(encodeFrame(payload));
  while (stream.writableNeedsDrain && stream.writeBufferLength > WRITE_HIGH_WATER) {
    await nextDrain(stream, signal);
  }
}

function nextDrain(stream: Stream, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      stream.removeEventListener('drain', onDrain);
      stream.removeEventListener('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new KithError('ERR_NO_LINK', 'the stream closed while sending'));
    const onAbort = (): void => done(new KithError('ERR_ABORTED', 'sending was aborted'));
    stream.addEventListener('drain', onDrain);
    stream.addEventListener('close', onClose);
    signal?.addEventListener('abort', onAbort);
  });
}

/** Small request/response messages (hello, invitation, addresses) are JSON in one frame. */
export async function writeJson(stream: Stream, value: unknown, signal?: AbortSignal): Promise<void> {
  await writeFrame(stream, new TextEncoder().encode(JSON.stringify(value)), signal);
}

/** Reads exactly one JSON frame, or throws ERR_PROTOCOL when the stream ends first or it is not JSON. */
export async function readJson<T>(frames: AsyncIterator<Uint8Array>): Promise<T> {
  const next = await frames.next();
  if (next.done) throw new KithError('ERR_PROTOCOL', 'the peer closed the stream before answering');
  try {
    return JSON.parse(new TextDecoder().decode(next.value)) as T;
  } catch {
    throw new KithError('ERR_PROTOCOL', 'the peer sent a frame that is not JSON');
  }
}

import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';

/** Where an outbound payload's bytes come from; read a chunk at a time, never all at once. */
export interface PayloadSource {
  /** Total bytes. */
  readonly size: number;
  /** Reads `length` bytes at `offset`. */
  read(offset: number, length: number): Promise<Buffer>;
  /** Hex SHA-256 of the whole payload, computed by streaming. */
  sha256(): Promise<string>;
  /** Releases file handles. */
  close(): Promise<void>;
}

export function bytesSource(data: Buffer): PayloadSource {
  return {
    size: data.length,
    async read(offset, length) {
      return data.subarray(offset, offset + length);
    },
    async sha256() {
      return createHash('sha256').update(data).digest('hex');
    },
    async close() {},
  };
}

export async function fileSource(path: string): Promise<PayloadSource> {
  const handle: FileHandle = await open(path, 'r');
  const { size } = await handle.stat();
  return {
    size,
    async read(offset, length) {
      const buf = Buffer.allocUnsafe(Math.min(length, size - offset));
      const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
      return buf.subarray(0, bytesRead);
    },
    sha256: () => hashFile(path),
    close: () => handle.close(),
  };
}

export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { MessageId } from '../../common/ids.ts';

/** Which chunks of an inbound message are stored: a bitmap, persisted so a transfer resumes. */
export class ChunkBitmap {
  constructor(
    readonly total: number,
    readonly bits: Buffer = Buffer.alloc(Math.ceil(total / 8)),
  ) {}

  has(i: number): boolean {
    return (this.bits[i >> 3] & (1 << (i & 7))) !== 0;
  }

  set(i: number): void {
    this.bits[i >> 3] |= 1 << (i & 7);
  }

  /** Chunks 0..n-1 all stored: the cumulative acknowledgement. */
  contiguous(): number {
    let n = 0;
    while (n < this.total && this.has(n)) n++;
    return n;
  }
}

/** The file an inbound chunked payload is assembled in, chunk by chunk at its offset. */
export function spoolPath(dir: string, id: MessageId): string {
  return join(dir, `${id}.part`);
}

export async function writeChunk(path: string, offset: number, data: Uint8Array): Promise<void> {
  const handle = await open(path, 'a+').then(async (h) => {
    await h.close();
    return open(path, 'r+');
  });
  try {
    await handle.write(data, 0, data.length, offset);
  } finally {
    await handle.close();
  }
}

export async function removeSpool(path: string): Promise<void> {
  await rm(path, { force: true });
}

import { open } from 'node:fs/promises';
import { KithError } from '../../common/errors.ts';
import type { Served } from '../../gateway/streams/types.ts';

/** Where a transfer's verified bytes are while it arrives (DeliverySink.onTransfer's view). */
export interface SpoolView {
  spool: string;
  /** Payload bytes (signed manifest). */
  size: number;
  chunkSize: number;
  /** True once chunk i is authenticated and stored in the spool. */
  has(index: number): boolean;
}

/** Reads `length` bytes at `offset` of a file (one open per piece: the spool may be replaced). */
export async function readAt(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Resolves on the next wake() or rejects when the signal aborts. */
export class Wakeup {
  private waiters = new Set<() => void>();

  wake(): void {
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const w of waiters) w();
  }

  wait(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new KithError('ERR_STREAM_ABORTED', 'the reader went away'));
      const onAbort = () => {
        this.waiters.delete(done);
        reject(new KithError('ERR_STREAM_ABORTED', 'the reader went away'));
      };
      const done = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      this.waiters.add(done);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/**
 * A `kith send --file` payload served while it arrives: the file's bytes start after the
 * KITH-FILE header line (`offset` into the payload). Only chunks the receiver authenticated and
 * stored are read; a read past them waits for the next chunk; once the file is saved under
 * received/ it is read from there (the spool goes away after hand-off).
 */
export class ArrivingFile implements Served {
  private readonly changed = new Wakeup();
  private saved?: string;
  private endedWhy?: string;

  constructor(
    private view: SpoolView,
    /** Where the file's bytes start in the payload (the header line's length). */
    private readonly offset: number,
    readonly name: string,
    readonly type: string,
    /** The file's bytes when it is one of several in the payload; else up to the payload's end. */
    private readonly size?: number,
  ) {}

  /** A new view after a restart or a fresh assembly (the receiver's bitmap object changed). */
  attach(view: SpoolView): void {
    this.view = view;
    this.changed.wake();
  }

  /** A chunk was stored. */
  notify(): void {
    this.changed.wake();
  }

  /** The file is complete and saved: serve it from there. */
  complete(path: string): void {
    this.saved = path;
    this.changed.wake();
  }

  /** The transfer will never complete (cancelled or expired): waiting readers end with an error. */
  end(why: string): void {
    if (this.saved) return;
    this.endedWhy = why;
    this.changed.wake();
  }

  ended(): string | undefined {
    return this.endedWhy;
  }

  arriving(): boolean {
    return !this.saved && !this.endedWhy;
  }

  /** The spool the bytes are read from while they arrive ('' when unknown). */
  get spool(): string {
    return this.view.spool;
  }

  get savedAt(): string | undefined {
    return this.saved;
  }

  length(): number {
    return this.size ?? this.view.size - this.offset;
  }

  async read(offset: number, max: number, signal: AbortSignal): Promise<Buffer> {
    for (;;) {
      const length = this.length();
      if (offset >= length || max <= 0) return Buffer.alloc(0);
      const want = Math.min(max, length - offset);
      if (this.saved) return readAt(this.saved, offset, want);
      if (this.endedWhy) throw new KithError('ERR_TRANSFER_ENDED', this.endedWhy);
      const { spool, chunkSize, size, has } = this.view;
      const at = this.offset + offset;
      const index = Math.floor(at / chunkSize);
      if (has(index)) {
        const chunkEnd = Math.min((index + 1) * chunkSize, size);
        try {
          return await readAt(spool, at, Math.min(want, chunkEnd - at));
        } catch (err) {
          // Handed off between the check and the read: the saved file takes over (complete()).
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          if (this.saved) continue;
        }
      }
      await this.changed.wait(signal);
    }
  }
}

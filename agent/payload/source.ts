import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { createReadStream, type BigIntStats } from 'node:fs';
import { KithError } from '../../common/errors.ts';

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

/**
 * What a user's file looked like when a message was sealed from it in place (`kith send --file`):
 * a write to it changes its size or its modification time, a replacement its inode. Not the
 * change time: deleting or renaming a name of the file moves it, and the file's bytes (kept alive
 * by the open handle or the outbox's hard link) are still those sealed. Decimal strings:
 * nanosecond times and inode numbers do not fit a double.
 */
export interface FileStamp {
  size: number;
  ino: string;
  mtimeNs: string;
}

/** A payload that is `head` followed by a user's file, read where it lies (never copied). */
export interface InPlaceFile {
  kind: 'in-place';
  path: string;
  head: Buffer;
  stamp: FileStamp;
}

export function stampOf(s: BigIntStats): FileStamp {
  return { size: Number(s.size), ino: String(s.ino), mtimeNs: String(s.mtimeNs) };
}

function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.size === b.size && a.ino === b.ino && a.mtimeNs === b.mtimeNs;
}

function changed(path: string, how: string): KithError {
  return new KithError(
    'ERR_FILE_CHANGED',
    `${path} ${how} while it was being sent`,
    'send it again once it no longer changes (or send a copy)',
  );
}

/**
 * `head` ‖ the file at `path`, checked against `stamp` when opened and after every read, so a
 * file the user changes or replaces mid-transfer fails with ERR_FILE_CHANGED instead of sending
 * bytes the manifest's size and the hash unit do not describe (docs/protocol.md 8.1). Why after
 * the read: a write before or during it moves the mtime, so a chunk that passed was read from the
 * file as it was sealed. A file deleted while open is still read (the inode lives on); gone from
 * `path` at a restart, the open fails the same way.
 */
export async function inPlaceSource(file: InPlaceFile): Promise<PayloadSource> {
  const { head, path, stamp } = file;
  const handle = await open(path, 'r').catch(() => {
    throw changed(path, 'was moved or deleted');
  });
  const check = async () => {
    if (!sameStamp(stampOf(await handle.stat({ bigint: true })), stamp)) throw changed(path, 'was changed');
  };
  try {
    await check();
  } catch (err) {
    await handle.close();
    throw err;
  }
  const size = head.length + stamp.size;
  const source: PayloadSource = {
    size,
    async read(offset, length) {
      const end = Math.min(size, offset + length);
      const parts: Buffer[] = [];
      if (offset < head.length) parts.push(head.subarray(offset, Math.min(end, head.length)));
      const from = Math.max(offset, head.length) - head.length;
      const want = end - head.length - from;
      if (want > 0) {
        const buf = Buffer.allocUnsafe(want);
        const { bytesRead } = await handle.read(buf, 0, want, from);
        await check();
        if (bytesRead !== want) throw changed(path, 'was changed');
        parts.push(buf);
      }
      return parts.length === 1 ? parts[0] : Buffer.concat(parts);
    },
    async sha256() {
      const hash = createHash('sha256');
      for (let at = 0; at < size; at += 1 << 20) hash.update(await source.read(at, 1 << 20));
      return hash.digest('hex');
    },
    close: () => handle.close(),
  };
  return source;
}

export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

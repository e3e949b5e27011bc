import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';

/**
 * Large bodies live as files beside the database, named by their SHA-256, written
 * atomically (temporary file, fsync, rename) so a blob either exists whole or not at all.
 */
export class BlobStore {
  /** Fan-out directories known to exist: each is made once, not once per blob. */
  private readonly subdirs = new Set<string>();

  constructor(private readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(join(this.dir, 'tmp'), { recursive: true, mode: 0o700 });
  }

  pathOf(hash: string): string {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new TypeError(`not a blob hash: ${hash}`);
    return join(this.dir, hash.slice(0, 2), hash);
  }

  /** Stores a buffer; returns its hash and size. */
  async put(data: Uint8Array): Promise<{ hash: string; size: number }> {
    return this.putStream(
      (async function* () {
        yield data;
      })(),
    );
  }

  /** Streams into a blob with bounded memory; durable when the promise resolves. */
  async putStream(source: Readable | AsyncIterable<Uint8Array>): Promise<{ hash: string; size: number }> {
    const tmp = join(this.dir, 'tmp', randomBytes(12).toString('hex'));
    const hasher = createHash('sha256');
    let size = 0;
    try {
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            hasher.update(chunk);
            size += chunk.length;
            yield chunk;
          }
        },
        // flush: fsync before close, on the handle that wrote (no second open just to sync)
        createWriteStream(tmp, { mode: 0o600, flush: true }),
      );
      const hash = hasher.digest('hex');
      const target = this.pathOf(hash);
      const sub = hash.slice(0, 2);
      const makeSubdir = async () => {
        await mkdir(join(this.dir, sub), { recursive: true, mode: 0o700 });
        this.subdirs.add(sub);
      };
      if (!this.subdirs.has(sub)) await makeSubdir();
      await rename(tmp, target).catch(async (err: NodeJS.ErrnoException) => {
        // the directory was removed behind our back: make it again
        if (err.code !== 'ENOENT') throw err;
        await makeSubdir();
        await rename(tmp, target);
      });
      return { hash, size };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  read(hash: string, range?: { start: number; end: number }): ReadStream {
    return createReadStream(this.pathOf(hash), range);
  }

  async has(hash: string): Promise<boolean> {
    return stat(this.pathOf(hash)).then(
      () => true,
      () => false,
    );
  }

  async remove(hash: string): Promise<void> {
    await rm(this.pathOf(hash), { force: true });
  }
}

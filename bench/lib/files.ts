// Test payloads for the transfer benchmarks: a random file of a given size, and its digest.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, readdirSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';

/** Writes `bytes` random bytes to `path` in 4 MiB pieces (bounded memory). */
export async function randomFile(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path);
  const piece = 4 * 1024 * 1024;
  for (let left = bytes; left > 0; left -= piece) {
    if (!out.write(randomBytes(Math.min(piece, left)))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The one file a transfer saved in `dir` (a node's received/), checked against the payload's size
 * and digest; throws when it is missing or differs. Returns its path.
 */
export async function receivedFile(dir: string, bytes: number, digest: string): Promise<string> {
  const [saved] = readdirSync(dir);
  if (!saved || statSync(join(dir, saved)).size !== bytes || (await sha256File(join(dir, saved))) !== digest)
    throw new Error('the file bob received differs from the one sent');
  return join(dir, saved);
}

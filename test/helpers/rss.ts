import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';

const MiB = 1024 * 1024;

/** The peak resident set size of this process while something ran, against where it started. */
export interface RssSampler {
  /** RSS when sampling started (after a GC when Node runs with --expose-gc). */
  readonly baseline: number;
  /** Highest RSS seen so far. */
  peak(): number;
  /** Stops sampling (the first call; later ones change nothing); returns the growth (peak - baseline) in bytes. */
  stop(): number;
}

/**
 * Samples this process's RSS every `everyMs` (50 ms: a transfer's buffers live longer than that).
 * Tests of bounded memory assert the growth, not an absolute figure: the Jest worker's own size
 * varies with what ran before.
 */
export function sampleRss(everyMs = 50): RssSampler {
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  let stopped = false;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), everyMs);
  return {
    baseline,
    peak: () => peak,
    stop: () => {
      if (!stopped) {
        stopped = true;
        clearInterval(timer);
        peak = Math.max(peak, process.memoryUsage().rss);
      }
      return peak - baseline;
    },
  };
}

/** Bytes as MiB with no decimals, for the figures tests print. */
export const mib = (bytes: number): string => (bytes / MiB).toFixed(0);

/**
 * Writes `size` pseudo-random bytes (16 MiB of randomness repeated, each block numbered so no
 * two are alike and a chunk mixed up with another shows) and returns their SHA-256.
 */
export async function writePayload(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const block = randomBytes(16 * MiB);
  const fh = await open(path, 'w');
  try {
    for (let offset = 0, n = 0; offset < size; offset += block.length, n++) {
      block.writeUInt32BE(n, 0);
      const part = block.subarray(0, Math.min(block.length, size - offset));
      hash.update(part);
      await fh.write(part, 0, part.length, offset);
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

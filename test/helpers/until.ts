import { HANG_MS } from './hang.ts';

/**
 * Polls until the probe returns something other than undefined: the one wait of the test helpers
 * (test/helpers/kith-nodes.ts and test/agents/network.ts re-export it). The timeout is a failure
 * ceiling (a hang detector, HANG_MS by default), not a measurement.
 */
export async function until<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = HANG_MS,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

import { KithError } from '../../common/errors.ts';
import type { ControlServer } from '../control/server.ts';
import type { LiveSender } from './live-sender.ts';

/** Largest segment the control channel takes (its lines are at most 1 MiB of JSON). */
export const MAX_SEGMENT_BYTES = 512 * 1024;

/**
 * Control methods of `kith stream` (docs/protocol.md 13): `stream.open {to, name?, type?}` →
 * `{stream, to}`; `stream.write {stream, data: base64, final}` → `{id, seq, offset}` once the
 * segment is durable in the outbox.
 */
export function registerStreamMethods(
  server: ControlServer,
  live: LiveSender,
  metrics?: () => Record<string, number>,
): void {
  // The delivery engine's counters (chunks_received, chunks_resent, chunk_bytes_resent, …): what a
  // transfer cost, for tests of separate processes and for whoever tunes a link.
  if (metrics) server.register('metrics', async () => metrics());
  server.register('stream.open', async (p) =>
    live.start({
      to: String(p.to ?? ''),
      name: typeof p.name === 'string' ? p.name : undefined,
      type: typeof p.type === 'string' ? p.type : undefined,
    }),
  );
  server.register('stream.write', async (p) => {
    const data = Buffer.from(String(p.data ?? ''), 'base64');
    if (data.length > MAX_SEGMENT_BYTES) {
      throw new KithError(
        'ERR_SEGMENT_TOO_LARGE',
        `a segment of ${data.length} bytes`,
        'cut segments smaller',
      );
    }
    return live.write({ stream: String(p.stream ?? ''), data, final: p.final === true });
  });
}

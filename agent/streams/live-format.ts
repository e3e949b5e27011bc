import { basename } from 'node:path';

/**
 * A live stream travels as a sequence of ordinary Kith messages, one per segment, each payload
 * `KITH-STREAM/1 ` ‖ JSON header ‖ LF ‖ the segment's bytes (docs/protocol.md 8.2). Each
 * segment's manifest is signed by the sender like every manifest, so the final segment — the
 * one with `final: true` and the stream's total `length` — is the sender's signed word on where
 * the stream ends; until it arrives the length is open.
 */
export const STREAM_MAGIC = 'KITH-STREAM/1 ';
const MAX_HEADER = 4096;

export interface SegmentHeader {
  /** 32 hex digits chosen by the sender; with the sender's fingerprint it names the stream. */
  stream: string;
  /** 0, 1, 2, … */
  seq: number;
  /** Where the segment's bytes go in the stream. */
  offset: number;
  name: string;
  /** Declared media type (the recipient accepts audio/* and video/* only). */
  type: string;
  final: boolean;
  /** Total bytes of the stream; present exactly when final. */
  length?: number;
}

export function encodeSegment(header: SegmentHeader, data: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(STREAM_MAGIC + JSON.stringify(header) + '\n'), data]);
}

/** The header of a segment payload, or undefined when the payload is something else. */
export function parseSegment(start: Buffer): { header: SegmentHeader; offset: number } | undefined {
  if (!start.subarray(0, STREAM_MAGIC.length).equals(Buffer.from(STREAM_MAGIC))) return undefined;
  const end = start.subarray(0, MAX_HEADER).indexOf(0x0a);
  if (end < 0) return undefined;
  try {
    const h = JSON.parse(start.subarray(STREAM_MAGIC.length, end).toString('utf8')) as SegmentHeader;
    const count = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
    if (typeof h.stream !== 'string' || !/^[0-9a-f]{32}$/.test(h.stream)) return undefined;
    if (!count(h.seq) || !count(h.offset) || typeof h.final !== 'boolean') return undefined;
    if (typeof h.name !== 'string' || typeof h.type !== 'string') return undefined;
    if (h.final !== (h.length !== undefined) || (h.final && !count(h.length))) return undefined;
    // Never trust a path from the network: keep the last component only.
    h.name = basename(h.name.replace(/\\/g, '/')) || 'stream';
    return { header: h, offset: end + 1 };
  } catch {
    return undefined;
  }
}

/**
 * When the sender cuts a segment. Why both limits: a byte limit keeps each segment a few chunks
 * (bounded memory in the CLI and the control line), and an age limit bounds the latency a live
 * viewer sees when the input is slow (a low-bitrate audio stream would otherwise wait for 256 KiB).
 */
export function shouldCut(buffered: number, ageMs: number, limits = { bytes: 192 * 1024, ms: 250 }): boolean {
  return buffered >= limits.bytes || (buffered > 0 && ageMs >= limits.ms);
}

/** What a Range header asks for, decided against what is known of the length. */
export type RangeDecision =
  { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * Parses `Range: bytes=a-b | a- | -n` (RFC 9110 14.1.2) against `length`. Several ranges are
 * answered with the whole body (allowed, and no player asks for them). Why the open-length rule:
 * a live stream whose end is not signed yet has no length to name in Content-Range, so its
 * ranges are ignored and the body plays from the start (Accept-Ranges: none says so).
 */
export function decideRange(header: string | undefined, length: number | undefined): RangeDecision {
  if (!header || length === undefined) return { kind: 'full' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return { kind: 'full' };
  const [, a, b] = m;
  if (a === '' && b === '') return { kind: 'full' };
  if (a === '') {
    const n = Number(b);
    if (n === 0 || length === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, length - n), end: length - 1 };
  }
  const start = Number(a);
  if (start >= length) return { kind: 'unsatisfiable' };
  const end = b === '' ? length - 1 : Math.min(Number(b), length - 1);
  if (end < start) return { kind: 'full' };
  return { kind: 'partial', start, end };
}

/** ISO base media files (MP4, M4A, MOV, 3GP): the types ffmpeg's mov demuxer reads. */
const ISO_BMFF = /^(video|audio)\/(mp4|x-m4v|quicktime|3gpp2?)(\s*;|$)/i;

/**
 * Whether a link answers a player's opening request (no Range, or `bytes=0-`) as a stream —
 * `200`, the whole length, `Accept-Ranges: none` — instead of as a seekable file. So for an ISO
 * BMFF file while it is still arriving. Why: told the source is seekable, ffmpeg's mov demuxer
 * (Chromium's <video>, mpv and ffplay all use it) first walks every fragment's box header to the
 * end of the file to build its fragment index, which for a file still arriving means waiting
 * for all of it (measured: Chromium never fired `playing` with 2 MiB of a 7 MiB fMP4 there); told it
 * is not, it plays from the first fragment on. Ranges a client asks for beyond that are still
 * served (206), and once the file is saved it is an ordinary seekable file again. WebM is not
 * affected: ffmpeg's Matroska demuxer reads its index (Cues) only when asked to seek.
 */
export function answerAsStream(
  type: string,
  arriving: boolean,
  decision: RangeDecision,
  length: number | undefined,
): boolean {
  if (!arriving || !ISO_BMFF.test(type) || length === undefined) return false;
  return (
    decision.kind === 'full' ||
    (decision.kind === 'partial' && decision.start === 0 && decision.end === length - 1)
  );
}

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

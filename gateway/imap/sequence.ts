import { ParseError } from './values.ts';

/** A parsed sequence set: ranges where Infinity stands for '*'. */
export type SequenceSet = [number, number][];

/** Parses "1,3:5,7:*" (and $ is refused: SEARCHRES is not offered). */
export function parseSequenceSet(text: string): SequenceSet {
  if (!/^[0-9:*,]+$/.test(text)) throw new ParseError('invalid sequence set');
  const out: SequenceSet = [];
  for (const item of text.split(',')) {
    const [a, b, extra] = item.split(':');
    if (extra !== undefined || a === undefined || a === '') throw new ParseError('invalid sequence set');
    const lo = num(a);
    const hi = b === undefined ? lo : num(b);
    out.push(lo <= hi ? [lo, hi] : [hi, lo]);
  }
  if (out.length > 10_000) throw new ParseError('sequence set too long');
  return out;
}

function num(s: string): number {
  if (s === '*') return Infinity;
  if (!/^[1-9][0-9]{0,9}$/.test(s)) throw new ParseError('invalid number in sequence set');
  const n = Number(s);
  if (n > 4294967295) throw new ParseError('number out of range');
  return n;
}

/**
 * Members of a set among sorted values. '*' means the largest value present (RFC 3501:
 * "the largest number in use"), so "5:*" with max 3 means 3:5.
 */
export function selectFromSorted(set: SequenceSet, sorted: readonly number[]): number[] {
  if (sorted.length === 0) return [];
  const max = sorted[sorted.length - 1]!;
  // Binary search per range: a one-message UID FETCH must not walk a 100,000-message snapshot.
  const lowerBound = (v: number): number => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const picked: number[] = [];
  for (const [a, b] of set) {
    const x = a === Infinity ? max : a;
    const y = b === Infinity ? max : b;
    const lo = Math.min(x, y);
    const hi = Math.max(x, y);
    for (let i = lowerBound(lo); i < sorted.length && sorted[i]! <= hi; i++) picked.push(sorted[i]!);
  }
  if (set.length === 1) return picked;
  return [...new Set(picked)].sort((p, q) => p - q);
}

/** Compresses sorted numbers to a sequence-set string ("1:3,7"). */
export function compressSet(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const out: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(i === j ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

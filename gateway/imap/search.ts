import { KithError } from '../../common/errors.ts';
import {
  decodeCharset,
  decodeTransfer,
  decodeWords,
  messageSource,
  parseHeader,
  type MimePart,
} from '../mime/index.ts';
import type { MessageRow } from '../mailbox/types.ts';
import { parseDate } from './format.ts';
import { parseSequenceSet, type SequenceSet } from './sequence.ts';
import { ParseError, textOf, utf8Of, type Value } from './values.ts';
import { normalizeFlag } from './commands/args.ts';

/** A compiled search key. */
export type SearchNode =
  | { k: 'all' }
  | { k: 'flag'; flag: string; set: boolean }
  | { k: 'header'; field: string; value: string }
  | { k: 'body'; value: string; withHeader: boolean }
  | { k: 'internal'; op: 'before' | 'on' | 'since'; day: number }
  | { k: 'sent'; op: 'before' | 'on' | 'since'; day: number }
  | { k: 'size'; op: 'larger' | 'smaller'; n: number }
  | { k: 'seq'; set: SequenceSet }
  | { k: 'uid'; set: SequenceSet }
  | { k: 'modseq'; n: number }
  | { k: 'not'; a: SearchNode }
  | { k: 'or'; a: SearchNode; b: SearchNode }
  | { k: 'and'; all: SearchNode[] }
  | { k: 'none' };

const FLAG_KEYS: Record<string, [string, boolean]> = {
  ANSWERED: ['\\Answered', true],
  DELETED: ['\\Deleted', true],
  DRAFT: ['\\Draft', true],
  FLAGGED: ['\\Flagged', true],
  SEEN: ['\\Seen', true],
  UNANSWERED: ['\\Answered', false],
  UNDELETED: ['\\Deleted', false],
  UNDRAFT: ['\\Draft', false],
  UNFLAGGED: ['\\Flagged', false],
  UNSEEN: ['\\Seen', false],
  OLD: ['\\Recent', false],
};

/** Parses search keys (RFC 3501 6.4.4 plus MODSEQ); charset must be UTF-8 or US-ASCII. */
export function parseSearch(args: readonly Value[]): { node: SearchNode; charsetGiven: boolean } {
  let i = 0;
  let charsetGiven = false;
  if ((textOf(args[0]) ?? '').toUpperCase() === 'CHARSET') {
    const cs = (textOf(args[1]) ?? '').toUpperCase();
    if (cs !== 'UTF-8' && cs !== 'US-ASCII') {
      throw new KithError('ERR_IMAP_BADCHARSET', `charset ${cs.slice(0, 30)} not supported`, 'use UTF-8');
    }
    charsetGiven = true;
    i = 2;
  }
  const nodes: SearchNode[] = [];
  const state = { i, depth: 0 };
  while (state.i < args.length) nodes.push(parseKey(args, state));
  if (nodes.length === 0) throw new ParseError('missing search keys');
  return { node: nodes.length === 1 ? nodes[0]! : { k: 'and', all: nodes }, charsetGiven };
}

function parseKey(args: readonly Value[], st: { i: number; depth: number }): SearchNode {
  const v = args[st.i++];
  if (!v) throw new ParseError('missing search key');
  if (++st.depth > 64) throw new ParseError('search nested too deeply');
  try {
    if (v.t === 'list') {
      const inner = { i: 0, depth: st.depth };
      const all: SearchNode[] = [];
      while (inner.i < v.v.length) all.push(parseKey(v.v, inner));
      if (all.length === 0) throw new ParseError('empty search list');
      return all.length === 1 ? all[0]! : { k: 'and', all };
    }
    if (v.t !== 'atom') throw new ParseError('invalid search key');
    const key = v.v.toUpperCase();
    const str = (): string => {
      const s = utf8Of(args[st.i++]);
      if (s === null) throw new ParseError(`${key} needs a string`);
      return s;
    };
    const day = (): number => {
      const d = parseDate(textOf(args[st.i++]) ?? '');
      if (!d) throw new ParseError(`${key} needs a date`);
      return d.getTime();
    };
    const num = (): number => {
      const s = textOf(args[st.i++]) ?? '';
      if (!/^\d{1,19}$/.test(s)) throw new ParseError(`${key} needs a number`);
      return Number(s);
    };
    if (FLAG_KEYS[key]) return { k: 'flag', flag: FLAG_KEYS[key][0], set: FLAG_KEYS[key][1] };
    switch (key) {
      case 'ALL':
        return { k: 'all' };
      case 'NEW':
      case 'RECENT':
        // \Recent is not kept (no session gets to "own" new mail), so nothing is recent.
        return { k: 'none' };
      case 'KEYWORD':
      case 'UNKEYWORD': {
        const flag = normalizeFlag(textOf(args[st.i++]) ?? '');
        if (!flag) throw new ParseError('KEYWORD needs a flag');
        return { k: 'flag', flag, set: key === 'KEYWORD' };
      }
      case 'BCC':
      case 'CC':
      case 'FROM':
      case 'TO':
      case 'SUBJECT':
        return { k: 'header', field: key.toLowerCase(), value: str().toLowerCase() };
      case 'HEADER': {
        const field = str().toLowerCase();
        return { k: 'header', field, value: str().toLowerCase() };
      }
      case 'BODY':
        return { k: 'body', value: str().toLowerCase(), withHeader: false };
      case 'TEXT':
        return { k: 'body', value: str().toLowerCase(), withHeader: true };
      case 'BEFORE':
        return { k: 'internal', op: 'before', day: day() };
      case 'ON':
        return { k: 'internal', op: 'on', day: day() };
      case 'SINCE':
        return { k: 'internal', op: 'since', day: day() };
      case 'SENTBEFORE':
        return { k: 'sent', op: 'before', day: day() };
      case 'SENTON':
        return { k: 'sent', op: 'on', day: day() };
      case 'SENTSINCE':
        return { k: 'sent', op: 'since', day: day() };
      case 'LARGER':
        return { k: 'size', op: 'larger', n: num() };
      case 'SMALLER':
        return { k: 'size', op: 'smaller', n: num() };
      case 'UID':
        return { k: 'uid', set: parseSequenceSet(textOf(args[st.i++]) ?? '') };
      case 'MODSEQ': {
        // Optional entry name and type (RFC 7162): MODSEQ "/flags/\\draft" all 620162338
        if (args[st.i]?.t === 'string') st.i += 2;
        return { k: 'modseq', n: num() };
      }
      case 'NOT':
        return { k: 'not', a: parseKey(args, st) };
      case 'OR': {
        const a = parseKey(args, st);
        return { k: 'or', a, b: parseKey(args, st) };
      }
      default:
        if (/^[0-9:*,]+$/.test(key)) return { k: 'seq', set: parseSequenceSet(key) };
        throw new ParseError(`unknown search key ${key.slice(0, 30)}`);
    }
  } finally {
    st.depth--;
  }
}

/** What evaluating a search needs from the store, cheapest first. */
export function searchNeeds(n: SearchNode): { meta: boolean; header: boolean; raw: boolean } {
  const out = { meta: false, header: false, raw: false };
  const walk = (x: SearchNode): void => {
    if (x.k === 'internal' || x.k === 'size') out.meta = true;
    else if (x.k === 'header' || x.k === 'sent') out.header = true;
    else if (x.k === 'body') out.raw = true;
    else if (x.k === 'not') walk(x.a);
    else if (x.k === 'or') {
      walk(x.a);
      walk(x.b);
    } else if (x.k === 'and') x.all.forEach(walk);
  };
  walk(n);
  if (out.header || out.raw) out.meta = true;
  return out;
}

/**
 * Header needles every match must contain (the top-level AND's header keys): the store can find
 * the few messages that have them without reading the others.
 */
export function requiredHeaderNeedles(n: SearchNode): string[] {
  const all = n.k === 'and' ? n.all : [n];
  return all
    .filter((x): x is Extract<SearchNode, { k: 'header' }> => x.k === 'header' && x.value !== '')
    .map((x) => x.value);
}

/** One message as the evaluator sees it. */
export interface SearchSubject {
  seq: number;
  uid: number;
  maxSeq: number;
  maxUid: number;
  flags: readonly string[];
  modseq: number;
  row: MessageRow | null;
  /** Raw bytes (whole message, or header only). */
  bytes: Buffer | null;
}

/** Evaluates a compiled search against one message. */
export function matches(n: SearchNode, m: SearchSubject, cache: Map<string, unknown> = new Map()): boolean {
  switch (n.k) {
    case 'all':
      return true;
    case 'none':
      return false;
    case 'flag': {
      const has = m.flags.some((f) => f.toLowerCase() === n.flag.toLowerCase());
      return has === n.set;
    }
    case 'seq':
      return inSet(n.set, m.seq, m.maxSeq);
    case 'uid':
      return inSet(n.set, m.uid, m.maxUid);
    case 'modseq':
      return m.modseq >= n.n;
    case 'size':
      return n.op === 'larger' ? m.row!.size > n.n : m.row!.size < n.n;
    case 'internal':
      return compareDay(n.op, utcDay(m.row!.internalDate.getTime()), n.day);
    case 'sent': {
      const date = headerValues(m, cache).get('date')?.[0];
      const day = date === undefined ? null : writtenDay(date);
      if (day === null) return false;
      return compareDay(n.op, day, n.day);
    }
    case 'header': {
      if (n.value !== '' && cannotContain(m, n.value, cache)) return false;
      const values = headerValues(m, cache).get(n.field);
      if (!values) return false;
      return n.value === '' || values.some((v) => v.toLowerCase().includes(n.value));
    }
    case 'body': {
      if (n.withHeader) {
        for (const vs of headerValues(m, cache).values())
          if (vs.some((v) => v.toLowerCase().includes(n.value))) return true;
      }
      return bodyText(m, cache).includes(n.value);
    }
    case 'not':
      return !matches(n.a, m, cache);
    case 'or':
      return matches(n.a, m, cache) || matches(n.b, m, cache);
    case 'and':
      return n.all.every((x) => matches(x, m, cache));
  }
}

function inSet(set: SequenceSet, v: number, max: number): boolean {
  for (const [a, b] of set) {
    const lo = Math.min(a === Infinity ? max : a, b === Infinity ? max : b);
    const hi = Math.max(a === Infinity ? max : a, b === Infinity ? max : b);
    if (v >= lo && v <= hi) return true;
  }
  return false;
}

const utcDay = (t: number): number => Math.floor(t / 86_400_000) * 86_400_000;

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/**
 * The day of a Date header as written, time and zone ignored: RFC 3501 compares SENT* keys
 * against the date in the header, so "Mon, 2 Mar 2026 23:30 -0500" is on 2 March even though
 * it is 3 March in UTC. Returns a UTC midnight (like parsed search dates), or null.
 */
export function writtenDay(value: string): number | null {
  const m = /(?:^|[\s,])(\d{1,2})\s+([a-z]{3})[a-z]*\s+(\d{2,4})(?=\s|$)/i.exec(
    value.replace(/\([^)]*\)/g, ' '),
  );
  if (m) {
    const month = MONTHS.indexOf(m[2]!.toLowerCase());
    let year = Number(m[3]);
    // Obsolete two- and three-digit years (RFC 5322 4.3).
    if (m[3]!.length === 2) year += year < 50 ? 2000 : 1900;
    else if (m[3]!.length === 3) year += 1900;
    const day = Number(m[1]);
    if (month >= 0 && day >= 1 && day <= 31) return Date.UTC(year, month, day);
  }
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : utcDay(t);
}

function compareDay(op: 'before' | 'on' | 'since', day: number, target: number): boolean {
  if (op === 'before') return day < target;
  if (op === 'on') return day === target;
  return day >= target;
}

// A cheap rejection before parsing: an ASCII needle absent from the unfolded raw header, with no
// encoded words that could hide it, cannot match any field.
function cannotContain(m: SearchSubject, needle: string, cache: Map<string, unknown>): boolean {
  if (m.row?.searchHeader != null) return !m.row.searchHeader.includes(needle);
  if (!/^[\x20-\x7e]*$/.test(needle)) return false;
  let low = cache.get('low') as string | undefined;
  if (low === undefined) {
    const bytes = m.bytes ?? Buffer.alloc(0);
    const end = m.row ? Math.min(m.row.headerEnd, bytes.length) : bytes.length;
    low = bytes
      .toString('latin1', 0, end)
      .replace(/\r?\n(?=[ \t])/g, '')
      .toLowerCase();
    cache.set('low', low);
  }
  return !low.includes(needle) && !low.includes('=?');
}

function headerValues(m: SearchSubject, cache: Map<string, unknown>): Map<string, string[]> {
  let h = cache.get('h') as Map<string, string[]> | undefined;
  if (h) return h;
  h = new Map();
  if (m.row?.searchHeader != null) {
    // Already decoded and lower-cased at insert (values compared lower-case anyway).
    for (const line of m.row.searchHeader.split('\n')) {
      const colon = line.indexOf(': ');
      if (colon < 0) continue;
      const key = line.slice(0, colon);
      const list = h.get(key) ?? [];
      list.push(line.slice(colon + 2));
      h.set(key, list);
    }
    cache.set('h', h);
    return h;
  }
  const bytes = m.bytes ?? Buffer.alloc(0);
  const end = m.row ? Math.min(m.row.headerEnd, bytes.length) : bytes.length;
  for (const f of parseHeader(bytes.toString('latin1', 0, end))) {
    const list = h.get(f.key) ?? [];
    list.push(decodeWords(f.value));
    h.set(f.key, list);
  }
  cache.set('h', h);
  return h;
}

// Text parts decoded from their transfer encoding and charset, lower-cased, so BODY "café" finds
// a quoted-printable ISO-8859-1 body.
function bodyText(m: SearchSubject, cache: Map<string, unknown>): string {
  const hit = cache.get('b') as string | undefined;
  if (hit !== undefined) return hit;
  const raw = m.bytes ?? Buffer.alloc(0);
  let out = '';
  const tree = m.row?.tree ? (JSON.parse(m.row.tree) as MimePart) : null;
  const walk = (p: MimePart, source: Buffer): void => {
    if (p.children) p.children.forEach((c) => walk(c, source));
    else if (p.message) walk(p.message, messageSource(p, source));
    else if (p.type === 'text' || p.type === 'message') {
      const body = source.subarray(p.bodyStart, p.end);
      const charset = p.params.find(([k]) => k === 'charset')?.[1] ?? 'utf-8';
      out += decodeCharset(decodeTransfer(body, p.encoding), charset) + '\n';
    }
  };
  if (tree) walk(tree, raw);
  else out = raw.subarray(m.row?.headerEnd ?? 0).toString('utf8');
  out = out.toLowerCase();
  cache.set('b', out);
  return out;
}

import { ParseError, textOf, type Value } from './values.ts';

/** A BODY[...] / BODY.PEEK[...] / RFC822* item. */
export interface SectionItem {
  kind: 'section';
  /** Name echoed in the response, e.g. "BODY[1.2.HEADER.FIELDS (From)]<0>". */
  responseName: string;
  /** Part path (empty = the whole message). */
  path: number[];
  /** What of the entity: '' = all of the part, HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME. */
  text: '' | 'HEADER' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT' | 'TEXT' | 'MIME';
  /** Lower-case field names for HEADER.FIELDS(.NOT). */
  fields: string[];
  /** <start.length> partial fetch. */
  partial: { start: number; length: number } | null;
  /** Whether fetching sets \Seen (BODY[] and RFC822 do, BODY.PEEK and RFC822.HEADER do not). */
  setsSeen: boolean;
}

/** One FETCH data item. */
export type FetchItem =
  | {
      kind: 'simple';
      name:
        'FLAGS' | 'INTERNALDATE' | 'RFC822.SIZE' | 'ENVELOPE' | 'BODY' | 'BODYSTRUCTURE' | 'UID' | 'MODSEQ';
    }
  | SectionItem;

const MACROS: Record<string, string[]> = {
  ALL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'],
  FAST: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'],
  FULL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'],
};
const SIMPLE = new Set([
  'FLAGS',
  'INTERNALDATE',
  'RFC822.SIZE',
  'ENVELOPE',
  'BODY',
  'BODYSTRUCTURE',
  'UID',
  'MODSEQ',
]);
const SECTION = /^(BODY|BODY\.PEEK|BINARY\.PEEK|BINARY)\[([^\]]*)\](?:<(\d{1,10})(?:\.(\d{1,10}))?>)?$/i;
const SPEC =
  /^((?:[1-9]\d{0,4})(?:\.[1-9]\d{0,4}){0,40})?\.?(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)?(?: \((.*)\))?$/i;

/** Parses the FETCH item argument (a macro, an item, or a parenthesised list). */
export function parseFetchItems(arg: Value | undefined): FetchItem[] {
  if (!arg) throw new ParseError('missing FETCH items');
  const values = arg.t === 'list' ? arg.v : [arg];
  if (values.length === 0) throw new ParseError('empty FETCH item list');
  const out: FetchItem[] = [];
  for (const v of values) {
    const text = v.t === 'atom' ? v.v : null;
    if (text === null) throw new ParseError('invalid FETCH item');
    const upper = text.toUpperCase();
    if (arg.t !== 'list' && MACROS[upper]) {
      for (const n of MACROS[upper]) out.push({ kind: 'simple', name: n as 'FLAGS' });
    } else if (SIMPLE.has(upper)) out.push({ kind: 'simple', name: upper as 'FLAGS' });
    else if (upper === 'RFC822') out.push(section('RFC822', [], '', [], null, true));
    else if (upper === 'RFC822.HEADER') out.push(section('RFC822.HEADER', [], 'HEADER', [], null, false));
    else if (upper === 'RFC822.TEXT') out.push(section('RFC822.TEXT', [], 'TEXT', [], null, true));
    else out.push(parseSection(text));
  }
  return out;
}

function section(
  responseName: string,
  path: number[],
  text: SectionItem['text'],
  fields: string[],
  partial: SectionItem['partial'],
  setsSeen: boolean,
): SectionItem {
  return { kind: 'section', responseName, path, text, fields, partial, setsSeen };
}

function parseSection(text: string): SectionItem {
  const m = SECTION.exec(text);
  if (!m) throw new ParseError(`unknown FETCH item ${text.slice(0, 40)}`);
  if (m[1]!.toUpperCase().startsWith('BINARY')) throw new ParseError('BINARY is not supported');
  const spec = SPEC.exec(m[2]!);
  if (!spec) throw new ParseError('invalid section');
  const path = spec[1] ? spec[1].split('.').map(Number) : [];
  const what = (spec[2]?.toUpperCase() ?? '') as SectionItem['text'];
  if (what === 'MIME' && path.length === 0) throw new ParseError('MIME needs a part number');
  let fields: string[] = [];
  if (what.startsWith('HEADER.FIELDS')) {
    if (spec[3] === undefined) throw new ParseError('HEADER.FIELDS needs a field list');
    fields = spec[3]
      .split(/\s+/)
      .map((f) => f.replace(/^"|"$/g, '').toLowerCase())
      .filter(Boolean);
    if (fields.length === 0) throw new ParseError('empty header field list');
  } else if (spec[3] !== undefined) throw new ParseError('invalid section');
  const partial =
    m[3] !== undefined ? { start: Number(m[3]), length: m[4] !== undefined ? Number(m[4]) : Infinity } : null;
  if (partial && partial.length === 0) throw new ParseError('zero-length partial');
  const responseName = `BODY[${m[2]}]${partial ? `<${partial.start}>` : ''}`;
  return section(responseName, path, what, fields, partial, !m[1]!.toUpperCase().endsWith('PEEK'));
}

/** Parses FETCH modifiers: "(CHANGEDSINCE n)", with QRESYNC's "VANISHED" (RFC 7162 3.2.6). */
export function parseFetchModifiers(arg: Value | undefined): { changedSince?: number; vanished?: boolean } {
  if (!arg) return {};
  if (arg.t !== 'list') throw new ParseError('invalid FETCH modifiers');
  const out: { changedSince?: number; vanished?: boolean } = {};
  for (let i = 0; i < arg.v.length; i++) {
    const k = (textOf(arg.v[i]) ?? '').toUpperCase();
    if (k === 'CHANGEDSINCE' && out.changedSince === undefined) {
      const v = textOf(arg.v[++i]) ?? '';
      if (!/^\d{1,19}$/.test(v)) throw new ParseError('invalid FETCH modifier');
      out.changedSince = Number(v);
    } else if (k === 'VANISHED' && !out.vanished) out.vanished = true;
    else throw new ParseError('invalid FETCH modifier');
  }
  if (out.changedSince === undefined) throw new ParseError('invalid FETCH modifier');
  return out;
}

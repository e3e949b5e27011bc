// The values a command's arguments are made of, and the tokenizer that produces them from a
// command's text parts and literals.

/** A literal kept in memory, or on disk past the spill threshold. */
export interface Literal {
  t: 'literal';
  /** Octets announced and received. */
  size: number;
  /** The bytes, when small. */
  data?: Buffer;
  /** A temporary file holding the bytes, when large (deleted after the command). */
  file?: string;
}

/** One argument: an atom (brackets included, e.g. BODY[1.2]<0.10>), a quoted string, a literal or a list. */
export type Value =
  { t: 'atom'; v: string } | { t: 'string'; v: string } | Literal | { t: 'list'; v: Value[] };

/** A syntax error in a command: answered with BAD, the session goes on. */
export class ParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ParseError';
  }
}

const MAX_DEPTH = 16;
const MAX_VALUES = 100_000;

/**
 * Tokenizes the text of a command (latin1, CRLF removed) where the k-th literal follows the
 * k-th text part. Atoms may contain a bracketed section with spaces, as FETCH items do.
 */
export function tokenize(parts: readonly string[], literals: readonly Literal[]): Value[] {
  const root: Value[] = [];
  const stack: Value[][] = [root];
  let count = 0;
  for (let p = 0; p < parts.length; p++) {
    const s = parts[p]!;
    let i = 0;
    while (i < s.length) {
      const c = s[i]!;
      const top = stack[stack.length - 1]!;
      if (++count > MAX_VALUES) throw new ParseError('too many arguments');
      if (c === ' ') {
        i++;
      } else if (c === '(') {
        if (stack.length > MAX_DEPTH) throw new ParseError('lists nested too deeply');
        const list: Value[] = [];
        top.push({ t: 'list', v: list });
        stack.push(list);
        i++;
      } else if (c === ')') {
        if (stack.length === 1) throw new ParseError('unbalanced parenthesis');
        stack.pop();
        i++;
      } else if (c === '"') {
        let out = '';
        i++;
        for (;;) {
          if (i >= s.length) throw new ParseError('unterminated quoted string');
          const d = s[i]!;
          if (d === '"') break;
          if (d === '\\') {
            const e = s[i + 1];
            if (e !== '"' && e !== '\\') throw new ParseError('bad escape in quoted string');
            out += e;
            i += 2;
          } else {
            out += d;
            i++;
          }
        }
        i++;
        top.push({ t: 'string', v: out });
      } else {
        const start = i;
        while (i < s.length) {
          const d = s[i]!;
          if (d === '[') {
            const close = s.indexOf(']', i);
            if (close < 0) throw new ParseError('unterminated [');
            i = close + 1;
            continue;
          }
          if (d === ' ' || d === '(' || d === ')' || d === '"') break;
          i++;
        }
        const atom = s.slice(start, i);
        // eslint-disable-next-line no-control-regex
        if (/[\x00-\x1f\x7f{]/.test(atom)) throw new ParseError('bad character in atom');
        top.push({ t: 'atom', v: atom });
      }
    }
    if (p < literals.length) stack[stack.length - 1]!.push(literals[p]!);
  }
  if (stack.length !== 1) throw new ParseError('unbalanced parenthesis');
  return root;
}

/** The text of an atom or string (a literal's bytes as latin1 when it is in memory). */
export function textOf(v: Value | undefined): string | null {
  if (!v) return null;
  if (v.t === 'atom' || v.t === 'string') return v.v;
  if (v.t === 'literal' && v.data) return v.data.toString('latin1');
  return null;
}

/** An astring argument decoded as UTF-8 (mailbox names, search strings, credentials). */
export function utf8Of(v: Value | undefined): string | null {
  const t = textOf(v);
  return t === null ? null : Buffer.from(t, 'latin1').toString('utf8');
}

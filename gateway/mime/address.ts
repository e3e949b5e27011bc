// RFC 5322 address lists into IMAP ENVELOPE address structures. Values stay raw (encoded words
// are not decoded: IMAP clients decode them), only quoting and comments are removed.

/** One IMAP address: (name adl mailbox host); group start/end markers use the same shape. */
export interface ImapAddress {
  name: string | null;
  adl: string | null;
  mailbox: string | null;
  host: string | null;
}

type Token =
  | { t: 'atom'; v: string }
  | { t: 'quoted'; v: string }
  | { t: 'comment'; v: string }
  | { t: 'literal'; v: string }
  | { t: 'special'; v: string };

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
    } else if (c === '"') {
      let v = '';
      i++;
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        v += s[i++];
      }
      i++;
      out.push({ t: 'quoted', v });
    } else if (c === '(') {
      let depth = 1;
      let v = '';
      i++;
      while (i < s.length && depth > 0) {
        if (s[i] === '\\' && i + 1 < s.length) {
          v += s[i + 1];
          i += 2;
          continue;
        }
        if (s[i] === '(') depth++;
        if (s[i] === ')') depth--;
        if (depth > 0) v += s[i];
        i++;
      }
      out.push({ t: 'comment', v: v.trim() });
    } else if (c === '[') {
      const end = s.indexOf(']', i);
      const stop = end < 0 ? s.length : end + 1;
      out.push({ t: 'literal', v: s.slice(i, stop) });
      i = stop;
    } else if ('<>,:;@.'.includes(c)) {
      out.push({ t: 'special', v: c });
      i++;
    } else {
      let v = '';
      while (i < s.length && !' \t\r\n"(),:;<>@[]'.includes(s[i]!)) v += s[i++];
      if (v === '') {
        // A stray special like ']' or ')'; keep it as text rather than looping.
        v = s[i++]!;
      }
      out.push({ t: 'atom', v });
    }
  }
  return out;
}

function phrase(tokens: Token[]): string | null {
  const words: string[] = [];
  let dotPending = false;
  for (const tok of tokens) {
    if (tok.t === 'comment') continue;
    if (tok.t === 'special' && tok.v === '.') {
      dotPending = true;
      continue;
    }
    if (dotPending && words.length) {
      words[words.length - 1] += '.' + tok.v;
      dotPending = false;
    } else words.push(tok.v);
  }
  const s = words.join(' ').trim();
  return s === '' ? null : s;
}

function addrSpec(tokens: Token[]): { mailbox: string | null; host: string | null; adl: string | null } {
  // Strip an obsolete route (@a,@b:) into adl.
  let adl: string | null = null;
  const colon = tokens.findIndex((t) => t.t === 'special' && t.v === ':');
  if (colon >= 0 && tokens[0]?.t === 'special' && tokens[0].v === '@') {
    adl = tokens
      .slice(0, colon)
      .map((t) => t.v)
      .join('');
    tokens = tokens.slice(colon + 1);
  }
  const at = tokens.map((t) => t.t === 'special' && t.v === '@').lastIndexOf(true);
  const join = (ts: Token[]): string =>
    ts
      .filter((t) => t.t !== 'comment')
      .map((t) =>
        t.t === 'quoted' && /[\s"\\()<>,;:@[\]]/.test(t.v) ? `"${t.v.replace(/(["\\])/g, '\\$1')}"` : t.v,
      )
      .join('');
  if (at < 0) {
    const local = join(tokens);
    return { mailbox: local === '' ? null : local, host: null, adl };
  }
  const local = join(tokens.slice(0, at));
  const host = join(tokens.slice(at + 1));
  return { mailbox: local === '' ? null : local, host: host === '' ? null : host, adl };
}

function mailboxOf(tokens: Token[]): ImapAddress | null {
  if (tokens.length === 0) return null;
  const lt = tokens.findIndex((t) => t.t === 'special' && t.v === '<');
  if (lt >= 0) {
    const gt = tokens.findIndex((t, i) => i > lt && t.t === 'special' && t.v === '>');
    const inner = tokens.slice(lt + 1, gt < 0 ? tokens.length : gt);
    const spec = addrSpec(inner);
    let name = phrase(tokens.slice(0, lt));
    if (name === null) {
      const comment = tokens.find((t) => t.t === 'comment' && t.v !== '');
      name = comment ? comment.v : null;
    }
    return { name, adl: spec.adl, mailbox: spec.mailbox, host: spec.host };
  }
  const spec = addrSpec(tokens);
  const comment = tokens.find((t) => t.t === 'comment' && t.v !== '');
  if (spec.mailbox === null && spec.host === null) return null;
  return { name: comment ? comment.v : null, adl: spec.adl, mailbox: spec.mailbox, host: spec.host };
}

/** Parses an address-list header value into IMAP addresses (groups as start/end markers). */
export function parseAddressList(value: string): ImapAddress[] {
  const tokens = tokenize(value);
  const out: ImapAddress[] = [];
  let current: Token[] = [];
  let inGroup = false;
  const flush = (): void => {
    const a = mailboxOf(current);
    if (a) out.push(a);
    current = [];
  };
  for (const tok of tokens) {
    if (tok.t === 'special' && tok.v === ',') {
      flush();
    } else if (
      tok.t === 'special' &&
      tok.v === ':' &&
      !inGroup &&
      !current.some((t) => t.t === 'special' && t.v === '<')
    ) {
      // "group: a, b;" — a route-addr "<@a:b@c>" has '<' before its ':'.
      out.push({ name: null, adl: null, mailbox: phrase(current) ?? '', host: null });
      current = [];
      inGroup = true;
    } else if (tok.t === 'special' && tok.v === ';' && inGroup) {
      flush();
      out.push({ name: null, adl: null, mailbox: null, host: null });
      inGroup = false;
    } else current.push(tok);
  }
  flush();
  if (inGroup) out.push({ name: null, adl: null, mailbox: null, host: null });
  return out;
}

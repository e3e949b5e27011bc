// Header parsing on latin1 ("binary") strings: one char per byte, so 8-bit headers survive
// untouched and offsets stay byte offsets.

/** One header field as it appears in the message. */
export interface HeaderField {
  /** Field name in lower case. */
  key: string;
  /** Unfolded raw value (CRLF removed, whitespace kept, leading whitespace trimmed). */
  value: string;
}

/** Where the header block ends: the offset of the body (after the blank line). */
export function findBodyStart(raw: Buffer, start: number, end: number): number {
  if (raw[start] === 0x0d && raw[start + 1] === 0x0a) return start + 2;
  if (raw[start] === 0x0a) return start + 1;
  for (let i = start; i < end; i++) {
    if (raw[i] !== 0x0a) continue;
    if (raw[i + 1] === 0x0a && i + 1 < end) return i + 2;
    if (raw[i + 1] === 0x0d && raw[i + 2] === 0x0a && i + 2 < end) return i + 3;
  }
  return end;
}

/** Parses a header block into fields, in order. Lines that are not fields are skipped. */
export function parseHeader(block: string): HeaderField[] {
  const fields: HeaderField[] = [];
  const lines = block.split(/\r?\n/);
  let current: string | null = null;
  const flush = (): void => {
    if (current === null) return;
    const colon = current.indexOf(':');
    if (colon > 0) {
      const key = current.slice(0, colon).trim().toLowerCase();
      if (key && !/[\s]/.test(key)) {
        fields.push({ key, value: current.slice(colon + 1).replace(/^[ \t]+/, '') });
      }
    }
    current = null;
  };
  for (const line of lines) {
    if (line === '') {
      flush();
      continue;
    }
    if ((line[0] === ' ' || line[0] === '\t') && current !== null) current += line;
    else {
      flush();
      current = line;
    }
  }
  flush();
  return fields;
}

/** First value of a field, or undefined. */
export function headerValue(fields: readonly HeaderField[], key: string): string | undefined {
  return fields.find((f) => f.key === key)?.value;
}

/** A Content-Type / Content-Disposition value: its main token and its parameters in order. */
export interface StructuredValue {
  value: string;
  params: [string, string][];
}

/**
 * Parses `type/subtype; a=b; c="d e"` (RFC 2045). Comments are dropped; parameter values are
 * unquoted but otherwise raw (RFC 2231 continuations stay as separate parameters, as IMAP sends them).
 */
export function parseStructured(input: string): StructuredValue {
  const s = stripComments(input);
  let i = 0;
  const skipWs = (): void => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  const token = (stop: RegExp): string => {
    const start = i;
    while (i < s.length && !stop.test(s[i]!)) i++;
    return s.slice(start, i).trim();
  };
  skipWs();
  const value = token(/;/);
  const params: [string, string][] = [];
  while (i < s.length) {
    if (s[i] === ';') i++;
    skipWs();
    if (i >= s.length) break;
    const name = token(/[=;]/);
    if (s[i] !== '=') {
      continue;
    }
    i++;
    skipWs();
    let v: string;
    if (s[i] === '"') {
      i++;
      let out = '';
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        out += s[i];
        i++;
      }
      i++;
      v = out;
      token(/;/);
    } else {
      v = token(/;/);
    }
    if (name) params.push([name.toLowerCase(), v]);
  }
  return { value: value.toLowerCase(), params };
}

function stripComments(s: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quoted) {
      out += c;
      if (c === '\\' && i + 1 < s.length) out += s[++i];
      else if (c === '"') quoted = false;
    } else if (depth > 0) {
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')') depth--;
    } else if (c === '"') {
      quoted = true;
      out += c;
    } else if (c === '(') depth++;
    else out += c;
  }
  return out;
}

/** Decodes RFC 2047 encoded words (for SEARCH, never for ENVELOPE, which stays raw). */
export function decodeWords(value: string): string {
  const text = Buffer.from(value, 'latin1').toString('utf8');
  return text
    .replace(/(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g, (whole, charset: string, enc: string, data: string) => {
      try {
        const bytes =
          enc.toUpperCase() === 'B'
            ? Buffer.from(data, 'base64')
            : Buffer.from(
                data
                  .replace(/_/g, ' ')
                  .replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))),
                'latin1',
              );
        return decodeCharset(bytes, charset.split('*')[0]!);
      } catch {
        return whole;
      }
    });
}

/** Decodes bytes in a named charset; unknown charsets fall back to UTF-8. */
export function decodeCharset(bytes: Buffer, charset: string): string {
  try {
    return new TextDecoder(charset.toLowerCase() || 'utf-8').decode(bytes);
  } catch {
    return bytes.toString('utf8');
  }
}

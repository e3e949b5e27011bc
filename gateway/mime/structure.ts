import { findBodyStart, headerValue, parseHeader, parseStructured, type HeaderField } from './header.ts';

/** One MIME entity of a stored message, with byte offsets into the raw message. */
export interface MimePart {
  /** Offset of the entity's header block. */
  headerStart: number;
  /** Offset of the body (after the blank line ending the header). */
  bodyStart: number;
  /** Offset just past the body. */
  end: number;
  /** Lower-case media type and subtype. */
  type: string;
  subtype: string;
  /** Content-Type parameters, names lower-cased, values raw. */
  params: [string, string][];
  /** Content-ID, Content-Description, Content-Transfer-Encoding, Content-MD5, Content-Location. */
  id: string | null;
  description: string | null;
  encoding: string | null;
  md5: string | null;
  location: string | null;
  disposition: { type: string; params: [string, string][] } | null;
  language: string[] | null;
  /** Lines of the body (text/* and message/rfc822). */
  lines: number;
  /** Child entities of a multipart. */
  children?: MimePart[];
  /** The encapsulated message of a message/rfc822 part (an entity whose header is at bodyStart). */
  message?: MimePart;
  /**
   * True when the message/rfc822 body had a base64 or quoted-printable transfer encoding: then
   * `message` was parsed from the decoded body and its offsets are into those decoded bytes.
   */
  decoded?: boolean;
  /** Header fields, kept only for message entities (the root and message/rfc822 bodies). */
  fields?: HeaderField[];
}

// Deep nesting is an attack, not mail: past this depth parts are treated as opaque.
const MAX_DEPTH = 40;

/** Parses the MIME tree of a raw message (the whole message is the root entity). */
export function parseMime(raw: Buffer): MimePart {
  return parseEntity(raw, 0, raw.length, 'text/plain', 0, true);
}

function countLines(raw: Buffer, start: number, end: number): number {
  if (end <= start) return 0;
  let n = 0;
  let i = raw.indexOf(0x0a, start);
  while (i >= 0 && i < end) {
    n++;
    i = raw.indexOf(0x0a, i + 1);
  }
  return raw[end - 1] === 0x0a ? n : n + 1;
}

function parseEntity(
  raw: Buffer,
  start: number,
  end: number,
  defaultType: string,
  depth: number,
  keepFields: boolean,
): MimePart {
  const bodyStart = findBodyStart(raw, start, end);
  const fields = parseHeader(raw.toString('latin1', start, bodyStart));
  const ct = headerValue(fields, 'content-type');
  let parsed = ct ? parseStructured(ct) : { value: defaultType, params: [] as [string, string][] };
  if (!/^[^/\s]+\/[^/\s]+$/.test(parsed.value)) {
    parsed = { value: 'text/plain', params: ct ? parsed.params : [] };
  }
  if (!ct && defaultType === 'text/plain') parsed.params = [['charset', 'us-ascii']];
  const [type, subtype] = parsed.value.split('/') as [string, string];
  const disp = headerValue(fields, 'content-disposition');
  const dispParsed = disp ? parseStructured(disp) : null;
  const lang = headerValue(fields, 'content-language');
  const enc = headerValue(fields, 'content-transfer-encoding');
  const part: MimePart = {
    headerStart: start,
    bodyStart,
    end,
    type,
    subtype,
    params: parsed.params,
    id: headerValue(fields, 'content-id')?.trim() ?? null,
    description: headerValue(fields, 'content-description') ?? null,
    encoding: enc
      ? enc
          .trim()
          .toLowerCase()
          .split(/[\s(;]/)[0]!
      : null,
    md5: headerValue(fields, 'content-md5')?.trim() ?? null,
    location: headerValue(fields, 'content-location')?.trim() ?? null,
    disposition:
      dispParsed && dispParsed.value ? { type: dispParsed.value, params: dispParsed.params } : null,
    language: lang
      ? lang
          .split(/[,\s]+/)
          .map((s) => s.trim())
          .filter(Boolean)
      : null,
    lines: 0,
  };
  if (keepFields) part.fields = fields;
  const boundary = parsed.params.find(([k]) => k === 'boundary')?.[1];
  if (type === 'multipart' && boundary && depth < MAX_DEPTH) {
    const childDefault = subtype === 'digest' ? 'message/rfc822' : 'text/plain';
    part.children = splitMultipart(raw, bodyStart, end, boundary).map(([s, e]) =>
      parseEntity(raw, s, e, childDefault, depth + 1, false),
    );
    if (part.children.length === 0) {
      // RFC 3501 needs at least one part; an empty text part stands in for a broken multipart.
      part.children.push(emptyPart(end));
    }
  } else if (type === 'message' && subtype === 'rfc822') {
    // RFC 3501's grammar needs an envelope, a body and a line count for every message/rfc822
    // part, so each branch gives it an embedded message.
    if (depth >= MAX_DEPTH) {
      part.message = opaqueMessage(raw, bodyStart, end);
    } else if (part.encoding === 'base64' || part.encoding === 'quoted-printable') {
      // RFC 2046 forbids encoding message/rfc822, but senders do: the message is the decoded body.
      const decoded = decodeTransfer(raw.subarray(bodyStart, end), part.encoding);
      part.message = parseEntity(decoded, 0, decoded.length, 'text/plain', depth + 1, true);
      part.decoded = true;
    } else {
      part.message = parseEntity(raw, bodyStart, end, 'text/plain', depth + 1, true);
    }
    // Like the size, the line count is of the body as transmitted.
    part.lines = countLines(raw, bodyStart, end);
  } else if (type === 'multipart') {
    part.children = [emptyPart(end)];
  }
  if (type === 'text') part.lines = countLines(raw, bodyStart, end);
  return part;
}

/** Decodes a base64 or quoted-printable body; other encodings are returned as they are. */
export function decodeTransfer(body: Buffer, encoding: string | null): Buffer {
  if (encoding === 'base64') return Buffer.from(body.toString('latin1'), 'base64');
  if (encoding === 'quoted-printable') {
    const s = body
      .toString('latin1')
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(s, 'latin1');
  }
  return body;
}

// Past the depth limit an embedded message is not parsed: a header-less text part stands for it.
function opaqueMessage(raw: Buffer, start: number, end: number): MimePart {
  return { ...emptyPart(start), end, lines: countLines(raw, start, end), fields: [] };
}

function emptyPart(at: number): MimePart {
  return {
    headerStart: at,
    bodyStart: at,
    end: at,
    type: 'text',
    subtype: 'plain',
    params: [['charset', 'us-ascii']],
    id: null,
    description: null,
    encoding: null,
    md5: null,
    location: null,
    disposition: null,
    language: null,
    lines: 0,
  };
}

/**
 * Byte ranges of the parts of a multipart body. The line break before a delimiter belongs to
 * the delimiter (RFC 2046), so it is not part of the preceding part.
 */
function splitMultipart(raw: Buffer, start: number, end: number, boundary: string): [number, number][] {
  const delim = Buffer.from('--' + boundary, 'latin1');
  const ranges: [number, number][] = [];
  let partStart = -1;
  let pos = start;
  while (pos < end) {
    const idx = raw.indexOf(delim, pos);
    if (idx < 0 || idx >= end) break;
    const atLineStart = idx === start || raw[idx - 1] === 0x0a;
    if (!atLineStart) {
      pos = idx + 1;
      continue;
    }
    let after = idx + delim.length;
    const closing = raw[after] === 0x2d && raw[after + 1] === 0x2d;
    if (closing) after += 2;
    // Only whitespace may follow the delimiter on its line, else it is content that merely starts with it.
    let eol = after;
    while (eol < end && (raw[eol] === 0x20 || raw[eol] === 0x09)) eol++;
    if (eol < end && raw[eol] !== 0x0d && raw[eol] !== 0x0a) {
      pos = idx + 1;
      continue;
    }
    if (partStart >= 0) {
      let partEnd = idx;
      if (partEnd > partStart && raw[partEnd - 1] === 0x0a) partEnd--;
      if (partEnd > partStart && raw[partEnd - 1] === 0x0d) partEnd--;
      ranges.push([partStart, Math.max(partStart, partEnd)]);
    }
    if (closing) return ranges;
    if (raw[eol] === 0x0d) eol++;
    if (raw[eol] === 0x0a) eol++;
    partStart = Math.min(eol, end);
    pos = partStart;
  }
  if (partStart >= 0) ranges.push([partStart, end]);
  return ranges;
}

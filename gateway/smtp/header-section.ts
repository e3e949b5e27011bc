import { isUtf8 } from 'node:buffer';

/** One header field as it stands in the message. */
export interface HeaderField {
  /** Field name as written (case kept). */
  name: string;
  /** Value with folding removed, decoded as UTF-8 (raw 8-bit bytes survive as U+FFFD). */
  value: string;
  /** Byte offsets of the whole field (continuation lines and line end included). */
  start: number;
  end: number;
}

export interface ParsedHeader {
  fields: HeaderField[];
  /** 1-based line number of the first line that is neither a field nor a continuation. */
  malformedLine?: number;
}

/**
 * Where the header section ends: the offset of the first body byte, or -1 when the buffer
 * holds no empty line yet. Both CRLF CRLF and LF LF count, so a bare-LF message is still
 * split where its author meant.
 */
export function headerEnd(buf: Buffer): number {
  if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) return 2; // no header at all
  if (buf.length >= 1 && buf[0] === 0x0a) return 1;
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] !== 0x0a) continue;
    if (buf[i + 1] === 0x0a) return i + 2;
    if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/** Splits a header section into fields, remembering the first line that makes no sense. */
export function parseHeader(header: Buffer): ParsedHeader {
  const fields: HeaderField[] = [];
  let malformedLine: number | undefined;
  let offset = 0;
  let line = 0;
  let current: { name: string; parts: string[]; start: number } | undefined;
  const close = (end: number) => {
    if (!current) return;
    fields.push({
      name: current.name,
      value: current.parts.join('').replace(/\r?\n/g, '').trim(),
      start: current.start,
      end,
    });
    current = undefined;
  };
  while (offset < header.length) {
    const nl = header.indexOf(0x0a, offset);
    const next = nl === -1 ? header.length : nl + 1;
    const text = header.subarray(offset, next).toString('utf8');
    line += 1;
    if (text === '\r\n' || text === '\n') {
      close(offset);
      break;
    }
    if (text[0] === ' ' || text[0] === '\t') {
      if (current) current.parts.push(text);
      else malformedLine ??= line;
    } else {
      close(offset);
      const colon = text.indexOf(':');
      const name = colon > 0 ? text.slice(0, colon) : '';
      if (!FIELD_NAME.test(name)) {
        malformedLine ??= line;
      } else {
        current = { name, parts: [text.slice(colon + 1)], start: offset };
      }
    }
    offset = next;
  }
  close(offset);
  return { fields, malformedLine };
}

/** All fields of one name (case-insensitive), in order. */
export function fieldsNamed(fields: readonly HeaderField[], name: string): HeaderField[] {
  const lower = name.toLowerCase();
  return fields.filter((f) => f.name.toLowerCase() === lower);
}

/** True when the bytes are 7-bit or well-formed UTF-8 (RFC 6532 headers). */
export function isUtf8OrAscii(buf: Buffer): boolean {
  return isUtf8(buf);
}

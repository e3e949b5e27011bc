import { locatePart, messageSource, type MimePart } from '../mime/index.ts';
import type { SectionItem } from './fetch-items.ts';

/**
 * The bytes a BODY[section] names, cut from the raw message by the offsets computed at insert.
 * An unknown part gives an empty string, as RFC 3501 allows.
 */
export function sectionBytes(
  raw: Buffer,
  tree: MimePart | null,
  item: SectionItem,
  headerEnd: number,
): Buffer {
  let header: [number, number];
  let body: [number, number];
  let source = raw;
  if (item.path.length === 0) {
    header = [0, headerEnd];
    body = [headerEnd, raw.length];
  } else {
    const found = tree ? locatePart(tree, raw, item.path) : null;
    if (!found) return EMPTY;
    const { part } = found;
    if (item.text === '') return found.source.subarray(part.bodyStart, part.end);
    if (item.text === 'MIME') {
      // The MIME header of part N of a plain message is the message header itself.
      return found.source.subarray(part.headerStart, part.bodyStart);
    }
    const msg = part.message ?? null;
    if (!msg) return EMPTY;
    source = messageSource(part, found.source);
    header = [msg.headerStart, msg.bodyStart];
    body = [msg.bodyStart, msg.end];
  }
  switch (item.text) {
    case '':
      return raw;
    case 'TEXT':
      return source.subarray(body[0], body[1]);
    case 'HEADER':
      return source.subarray(header[0], header[1]);
    default:
      return filterHeader(
        source.subarray(header[0], header[1]),
        item.fields,
        item.text === 'HEADER.FIELDS.NOT',
      );
  }
}

const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');

/** The header lines (with their continuation lines) whose names are (not) in `fields`, plus the blank line. */
export function filterHeader(header: Buffer, fields: readonly string[], not: boolean): Buffer {
  const want = new Set(fields);
  const out: Buffer[] = [];
  let start = 0;
  let keep = false;
  while (start < header.length) {
    let end = header.indexOf(0x0a, start);
    end = end < 0 ? header.length : end + 1;
    const first = header[start];
    if (first === 0x0d || first === 0x0a) break;
    if (first !== 0x20 && first !== 0x09) {
      const colon = header.indexOf(0x3a, start);
      const name =
        colon > start && colon < end ? header.toString('latin1', start, colon).trim().toLowerCase() : '';
      keep = name !== '' && want.has(name) !== not;
    }
    if (keep) out.push(header.subarray(start, end));
    start = end;
  }
  out.push(CRLF);
  return Buffer.concat(out);
}

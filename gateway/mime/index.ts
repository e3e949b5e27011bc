import { bodyStructureOf, envelopeOf } from './imap-format.ts';
import { decodeTransfer, parseMime, type MimePart } from './structure.ts';

export type { MimePart } from './structure.ts';
export { parseMime, decodeTransfer } from './structure.ts';
export { decodeWords, decodeCharset, parseHeader, headerValue } from './header.ts';
export { nstring, astring } from './imap-format.ts';

/** What the mailbox store keeps per message so FETCH never re-parses MIME. */
export interface MessageAnalysis {
  /** ENVELOPE response value (latin1 bytes). */
  envelope: string;
  /** BODYSTRUCTURE response value (latin1 bytes). */
  bodystructure: string;
  /** BODY (non-extensible) response value (latin1 bytes). */
  body: string;
  /** The MIME tree with offsets, for BODY[section] (header fields dropped to keep it small). */
  tree: MimePart;
}

/** Computes ENVELOPE, BODYSTRUCTURE and the part tree of a raw (CRLF) message, once, at insert. */
export function analyzeMessage(raw: Buffer): MessageAnalysis {
  const tree = parseMime(raw);
  const envelope = envelopeOf(tree.fields ?? []);
  const bodystructure = bodyStructureOf(tree, true);
  const body = bodyStructureOf(tree, false);
  return { envelope, bodystructure, body, tree: stripFields(tree) };
}

function stripFields(part: MimePart): MimePart {
  const { fields: _fields, children, message, ...rest } = part;
  const out: MimePart = { ...rest };
  if (children) out.children = children.map(stripFields);
  if (message) out.message = stripFields(message);
  return out;
}

/**
 * The bytes an embedded message's offsets refer to: the message/rfc822 part's own body, decoded
 * first when it had a transfer encoding (`source` holds the part's offsets).
 */
export function messageSource(part: MimePart, source: Buffer): Buffer {
  return part.decoded ? decodeTransfer(source.subarray(part.bodyStart, part.end), part.encoding) : source;
}

/**
 * Finds the entity a section path (e.g. [2, 1]) names, with the bytes its offsets refer to: the
 * raw message, or the decoded body of a transfer-encoded message/rfc822 part on the way. A
 * message/rfc822 part's sub-parts are those of its encapsulated message; a non-multipart entity
 * has only part 1, itself.
 */
export function locatePart(
  root: MimePart,
  raw: Buffer,
  path: readonly number[],
): { part: MimePart; source: Buffer } | null {
  let cur = root;
  let source = raw;
  let first = true;
  for (const n of path) {
    let container = cur;
    if (!first && container.message) {
      source = messageSource(container, source);
      container = container.message;
    }
    first = false;
    if (container.children) {
      const next = container.children[n - 1];
      if (!next) return null;
      cur = next;
    } else if (n === 1) {
      cur = container;
    } else return null;
  }
  return { part: cur, source };
}

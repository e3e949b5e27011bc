import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../common/logger.ts';
import { simpleParser } from 'mailparser';
import { fieldsNamed, headerEnd, parseHeader } from '../smtp/header-section.ts';
import { MAIL_FILE_MAX_FILES, MAIL_FILE_MAX_HEADER, encodeMailFileHeader, linkedField } from './mail-file.ts';

/** What the sender hands to the agent instead of the submitted message. */
export interface LinkedPayload {
  /** The `KITH-MAIL-FILE/1` payload file. */
  path: string;
  /** Its bytes. */
  size: number;
  /** The first linked attachment's name and decoded bytes. */
  name: string;
  fileSize: number;
  /** Every linked attachment, in payload order. */
  files: { name: string; size: number }[];
}

interface Part {
  /** Offset of the part's first header byte, of its first body byte, and of the CRLF before the next delimiter. */
  start: number;
  bodyStart: number;
  end: number;
  header: Buffer;
}

const BLOCK = 1024 * 1024;
/** Largest top-level header section and part header section looked at. */
const MAX_HEADER = 256 * 1024;
/** Largest stub (the mail without the linked bodies): the recipient reads it whole into its INBOX. */
const MAX_STUB = 32 * 1024 * 1024;
/** Deepest multipart nesting looked into (a forwarded mail inside a mixed one is 2–3). */
const MAX_DEPTH = 8;

/** Base64 alphabet bytes (1) and everything a decoder skips (0). */
const ALPHABET = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/')
  ALPHABET[c.charCodeAt(0)] = 1;

/**
 * Which leaf parts to link, in mail order. Why these: a base64 attachment is what every mail client
 * writes for a file, and any of them above the limit is what makes the mail too heavy to hold
 * whole, wherever it sits in the MIME tree; the rest stays in the mail. At most `max` are linked,
 * the largest ones (the header line names each).
 */
export function chooseLinked(
  parts: readonly { encodedBytes: number; base64: boolean; attachment: boolean }[],
  above: number,
  max = MAIL_FILE_MAX_FILES,
): number[] {
  const over = parts
    .map((p, i) => ({ p, i }))
    .filter(({ p }) => p.base64 && p.attachment && Math.floor((p.encodedBytes * 3) / 4) > above);
  over.sort((x, y) => y.p.encodedBytes - x.p.encodedBytes || x.i - y.i);
  return over
    .slice(0, max)
    .map(({ i }) => i)
    .sort((x, y) => x - y);
}

/**
 * Rewrites a submitted message whose attachments above `above` bytes (at any depth of its
 * multiparts) are linked into a `KITH-MAIL-FILE/1` payload in `dir` (named after `key`, so a
 * retry of the same message reuses it): bounded memory at any size, the attachments decoded on
 * the way. Undefined when nothing is linked (no such attachment, not multipart, or a stub too large).
 */
export async function linkAttachments(
  rawPath: string,
  size: number,
  options: { above: number; dir: string; key: string },
): Promise<LinkedPayload | undefined> {
  const raw = await open(rawPath, 'r');
  try {
    const head = await readAt(raw, 0, Math.min(size, MAX_HEADER));
    const end = headerEnd(head);
    if (end < 0) return undefined;
    const boundary = boundaryOf(head.subarray(0, end));
    if (!boundary) return undefined;
    const leaves = await leavesOf(raw, end, size, boundary, 1);
    const described = leaves.map((p) => {
      const fields = parseHeader(p.header).fields;
      const cte = fieldsNamed(fields, 'Content-Transfer-Encoding')[0]?.value.toLowerCase().trim();
      const disposition = fieldsNamed(fields, 'Content-Disposition')[0]?.value ?? '';
      const type = fieldsNamed(fields, 'Content-Type')[0]?.value ?? '';
      return {
        encodedBytes: p.end - p.bodyStart,
        base64: cte === 'base64',
        attachment: /^\s*attachment/i.test(disposition) || /\bname\*?=/i.test(type),
      };
    });
    let chosen = chooseLinked(described, options.above).map((i) => leaves[i]);
    if (chosen.length === 0) return undefined;
    let names = await Promise.all(chosen.map((p) => fileNameOf(p.header)));
    const maxSize = (p: Part) => Math.floor(((p.end - p.bodyStart) * 3) / 4);
    const line = (sizes: number[]) =>
      encodeMailFileHeader({
        name: names[0],
        size: sizes[0],
        mail: MAX_STUB,
        files: names.map((name, k) => ({ name, size: sizes[k] })),
      });
    // The recipient reads the header line from the first MAIL_FILE_MAX_HEADER bytes: with very long
    // names, the smallest of the chosen attachments stay in the mail.
    while (chosen.length > 1 && line(chosen.map(maxSize)).length > MAIL_FILE_MAX_HEADER) {
      const smallest = chosen.reduce((m, p, k) => (maxSize(p) < maxSize(chosen[m]) ? k : m), 0);
      chosen = chosen.filter((_, k) => k !== smallest);
      names = names.filter((_, k) => k !== smallest);
    }
    if (line(chosen.map(maxSize)).length > MAIL_FILE_MAX_HEADER) return undefined;
    const headers = chosen.map((p, k) => rewriteHeader(p.header, k + 1));
    // The stub: the mail as it is, each linked part's header rewritten and its body left out.
    const kept: [number, number][] = [];
    let from = 0;
    for (const p of chosen) {
      kept.push([from, p.start]);
      from = p.end;
    }
    kept.push([from, size]);
    const stubBytes = kept.reduce((n, [a, b]) => n + (b - a), 0) + headers.reduce((n, h) => n + h.length, 0);
    if (stubBytes > MAX_STUB) return undefined;
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    const target = join(options.dir, `${options.key}.kmf`);
    const tmp = `${target}.tmp`;
    const out = await open(tmp, 'w', 0o600);
    try {
      // The decoded sizes are known once decoded: the line is written wide enough for the largest
      // possible sizes (and stub), then rewritten in place with the real ones.
      const width = line(chosen.map(maxSize)).length;
      let at = 0;
      const write = async (buf: Buffer) => {
        await out.write(buf, 0, buf.length, at);
        at += buf.length;
      };
      await write(Buffer.alloc(width, 0x20));
      for (let k = 0; k < kept.length; k++) {
        await copyRange(raw, kept[k][0], kept[k][1], write);
        if (k < headers.length) await write(headers[k]);
      }
      const sizes: number[] = [];
      for (const p of chosen) {
        const fileStart = at;
        await decodeRange(raw, p.bodyStart, p.end, write);
        sizes.push(at - fileStart);
      }
      const files = names.map((name, k) => ({ name, size: sizes[k] }));
      const real = encodeMailFileHeader({ name: names[0], size: sizes[0], mail: stubBytes, files }, width);
      await out.write(real, 0, real.length, 0);
      await out.sync();
      await out.close();
      await rename(tmp, target);
      return { path: target, size: at, name: names[0], fileSize: sizes[0], files };
    } catch (err) {
      await out.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    }
  } finally {
    await raw.close();
  }
}

/** The leaf parts (not multipart themselves) of the multipart body in [from, to), depth first. */
async function leavesOf(
  fh: FileHandle,
  from: number,
  to: number,
  boundary: string,
  depth: number,
): Promise<Part[]> {
  const out: Part[] = [];
  for (const part of await partsOf(fh, from, to, boundary)) {
    const inner = depth < MAX_DEPTH ? boundaryOf(part.header) : undefined;
    if (inner) out.push(...(await leavesOf(fh, part.bodyStart, part.end, inner, depth + 1)));
    else out.push(part);
  }
  return out;
}

/** The boundary of a multipart Content-Type (of a mail or a part), or undefined. */
function boundaryOf(header: Buffer): string | undefined {
  const type = fieldsNamed(parseHeader(header).fields, 'Content-Type')[0]?.value ?? '';
  if (!/^\s*multipart\//i.test(type)) return undefined;
  const m = /;\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(type);
  return m?.[1] ?? m?.[2];
}

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  const { bytesRead } = await fh.read(buf, 0, length, offset);
  return buf.subarray(0, bytesRead);
}

/**
 * The top-level parts between `--boundary` delimiter lines (RFC 2046 5.1.1): each delimiter is
 * CRLF "--" boundary (the first may open the body), then "--" for the last one or the line's end.
 */
async function partsOf(fh: FileHandle, bodyStart: number, size: number, boundary: string): Promise<Part[]> {
  const needle = Buffer.from(`\r\n--${boundary}`);
  const delimiters: { at: number; close: boolean; next: number }[] = [];
  const opening = await readAt(fh, bodyStart, needle.length);
  const first = opening.subarray(0, needle.length - 2).equals(needle.subarray(2)) ? bodyStart - 2 : -1;
  const candidates: number[] = first >= 0 ? [first] : [];
  for (let pos = bodyStart; pos < size; pos += BLOCK) {
    const block = await readAt(fh, pos, Math.min(BLOCK + needle.length, size - pos));
    for (let i = block.indexOf(needle); i >= 0 && i < BLOCK; i = block.indexOf(needle, i + 1))
      candidates.push(pos + i);
  }
  for (const at of candidates) {
    const after = await readAt(fh, at + needle.length, 200);
    if (after[0] === 0x2d && after[1] === 0x2d) {
      delimiters.push({ at, close: true, next: -1 });
      break;
    }
    const eol = after.indexOf('\r\n');
    if (eol < 0 || after.subarray(0, eol).toString('latin1').trim() !== '') continue;
    delimiters.push({ at, close: false, next: at + needle.length + eol + 2 });
  }
  const parts: Part[] = [];
  for (let i = 0; i + 1 < delimiters.length; i++) {
    const start = delimiters[i].next;
    const end = delimiters[i + 1].at;
    if (start < 0 || end < start) continue;
    const head = await readAt(fh, start, Math.min(MAX_HEADER, end - start));
    const hEnd = headerEnd(head);
    if (hEnd < 0) continue;
    parts.push({ start, bodyStart: start + hEnd, end, header: head.subarray(0, hEnd) });
  }
  return parts;
}

/** The part's header without its Content-Transfer-Encoding, with the field the recipient replaces (the k-th). */
function rewriteHeader(header: Buffer, k: number): Buffer {
  const fields = parseHeader(header).fields.filter(
    (f) => f.name.toLowerCase() !== 'content-transfer-encoding',
  );
  return Buffer.concat([
    ...fields.map((f) => header.subarray(f.start, f.end)),
    Buffer.from(`${linkedField(k)}\r\n\r\n`),
  ]);
}

/** The attachment's file name as mail clients read it (RFC 2231 and encoded words too). */
async function fileNameOf(header: Buffer): Promise<string> {
  const mini = Buffer.concat([
    Buffer.from('Content-Type: multipart/mixed; boundary="kith-x"\r\n\r\n--kith-x\r\n'),
    header,
    Buffer.from('\r\n--kith-x--\r\n'),
  ]);
  const parsed = await simpleParser(mini, { skipHtmlToText: true, skipTextToHtml: true });
  const name = parsed.attachments[0]?.filename ?? 'attachment';
  return name.replace(/\\/g, '/').split('/').pop() || 'attachment';
}

async function copyRange(
  fh: FileHandle,
  from: number,
  to: number,
  write: (buf: Buffer) => Promise<void>,
): Promise<void> {
  for (let pos = from; pos < to; pos += BLOCK) await write(await readAt(fh, pos, Math.min(BLOCK, to - pos)));
}

/** Decodes base64 in [from, to) a block at a time; bytes outside the alphabet are skipped, as decoders do. */
async function decodeRange(
  fh: FileHandle,
  from: number,
  to: number,
  write: (buf: Buffer) => Promise<void>,
): Promise<void> {
  let carry = Buffer.alloc(0);
  for (let pos = from; pos < to; pos += BLOCK) {
    const block = await readAt(fh, pos, Math.min(BLOCK, to - pos));
    const clean = Buffer.allocUnsafe(carry.length + block.length);
    carry.copy(clean);
    let n = carry.length;
    for (let i = 0; i < block.length; i++) if (ALPHABET[block[i]] === 1) clean[n++] = block[i];
    const whole = n - (n % 4);
    if (whole > 0) await write(Buffer.from(clean.subarray(0, whole).toString('latin1'), 'base64'));
    carry = Buffer.from(clean.subarray(whole, n));
  }
  if (carry.length > 1) await write(Buffer.from(carry.toString('latin1'), 'base64'));
}

/**
 * The SMTP side's hook (HandlerDeps.linkAttachments): links every attachment above `above`
 * bytes; a message it cannot rewrite (or a failure on the way) is sent as it is, never refused.
 */
export function attachmentLinker(options: {
  above: number;
  dir: string;
  log: Logger;
}): ((rawPath: string, size: number, hash: string) => Promise<LinkedPayload | undefined>) | undefined {
  if (options.above <= 0) return undefined;
  return async (rawPath, size, hash) => {
    // A mail no larger than the limit cannot hold an attachment above it.
    if (size <= options.above) return undefined;
    try {
      const linked = await linkAttachments(rawPath, size, {
        above: options.above,
        dir: options.dir,
        key: hash,
      });
      if (linked)
        options.log.info(
          { files: linked.files.map((f) => `${f.name} (${f.size} bytes)`) },
          'attachments sent as file links',
        );
      return linked;
    } catch (err) {
      options.log.warn({ err: (err as Error).message }, 'attachment not linked: the message goes as it is');
      return undefined;
    }
  };
}

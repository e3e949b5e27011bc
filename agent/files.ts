import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, open, rename, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { KithError } from '../common/errors.ts';
import { stampOf, type InPlaceFile } from './payload/source.ts';

/**
 * `kith send --file` payloads: a one-line header, then the file's bytes unchanged. Files go
 * beside the mailbox, not into it: a multi-gigabyte attachment in an IMAP mailbox helps no
 * mail client, so the recipient's INBOX gets a short notice naming the saved file
 * (docs/protocol.md, "File payloads").
 */
export const FILE_MAGIC = 'KITH-FILE/1 ';
const MAX_HEADER = 4096;

export interface FileHeader {
  name: string;
  size: number;
}

async function regularFile(source: string) {
  const info = await stat(source, { bigint: true }).catch(() => {
    throw new KithError('ERR_FILE_NOT_FOUND', `cannot read ${source}`, 'check the path given with --file');
  });
  if (!info.isFile())
    throw new KithError('ERR_FILE_NOT_FOUND', `${source} is not a file`, 'give a regular file');
  return info;
}

function headerLine(source: string, size: number): Buffer {
  const header: FileHeader = { name: basename(source), size };
  return Buffer.from(FILE_MAGIC + JSON.stringify(header) + '\n');
}

/** Streams header + file into `target` (bounded memory); returns the payload size. */
export async function writeFilePayload(source: string, target: string): Promise<number> {
  const info = await regularFile(source);
  const line = headerLine(source, Number(info.size));
  const out = createWriteStream(target, { mode: 0o600 });
  out.write(line);
  await pipeline(createReadStream(source), out);
  return line.length + Number(info.size);
}

/**
 * A file payload read where the file lies: the header line and the file's stamp, nothing copied,
 * so a big file's first chunks leave at once (copying cost 3.6-12.4 s per GiB, bench/RESULTS.md
 * 11.2). `linkPath` (in outgoing/) gets a hard link where the filesystem allows, so the message
 * survives the user deleting or renaming the file, or an editor saving a new one over it; a
 * change to the file's own bytes fails the message with ERR_FILE_CHANGED (payload/source.ts,
 * docs/protocol.md 8.1). Without the link (another filesystem, a file we may not link) the user's
 * path is read, and a file gone from it at a restart fails the message the same way.
 */
export async function filePayloadInPlace(
  source: string,
  linkPath: string,
): Promise<{ source: InPlaceFile; size: number }> {
  await regularFile(source);
  const path = await link(source, linkPath).then(
    () => linkPath,
    () => source,
  );
  // The stamp after the link: the header's size and the bytes sent are the file's from here on.
  const info = await regularFile(path);
  const head = headerLine(source, Number(info.size));
  return {
    source: { kind: 'in-place', path, head, stamp: stampOf(info) },
    size: head.length + Number(info.size),
  };
}

/** The header of a file payload, or undefined when the payload is an ordinary message. */
export async function readFileHeader(
  path: string,
): Promise<{ header: FileHeader; offset: number } | undefined> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(MAX_HEADER);
    const { bytesRead } = await fh.read(buf, 0, MAX_HEADER, 0);
    return parseFileHeader(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

export function parseFileHeader(start: Buffer): { header: FileHeader; offset: number } | undefined {
  if (!start.subarray(0, FILE_MAGIC.length).equals(Buffer.from(FILE_MAGIC))) return undefined;
  const end = start.indexOf(0x0a);
  if (end < 0) return undefined;
  try {
    const header = JSON.parse(start.subarray(FILE_MAGIC.length, end).toString('utf8')) as FileHeader;
    if (typeof header.name !== 'string' || typeof header.size !== 'number') return undefined;
    // Never trust a path from the network: keep the last component only.
    header.name = basename(header.name.replace(/\\/g, '/')) || 'file';
    return { header, offset: end + 1 };
  } catch {
    return undefined;
  }
}

/**
 * Saves the file part of a received payload (a spooled file from `offset`, or bytes) into `dir`
 * as <message id prefix>-<name>, written to a .part file first so a crash leaves no half file.
 */
export async function saveReceived(
  payload: { path: string; offset: number; end?: number } | Buffer,
  name: string,
  dir: string,
  id: string,
): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const target = join(dir, `${id.slice(0, 8)}-${name}`);
  const tmp = target + '.part';
  if (Buffer.isBuffer(payload)) await writeFile(tmp, payload, { mode: 0o600 });
  else {
    if (payload.end === payload.offset) await writeFile(tmp, Buffer.alloc(0), { mode: 0o600 });
    else {
      const from = createReadStream(payload.path, {
        start: payload.offset,
        end: payload.end === undefined ? undefined : payload.end - 1,
      });
      await pipeline(from, createWriteStream(tmp, { mode: 0o600 }));
    }
  }
  await rename(tmp, target);
  return target;
}

/** The short INBOX message that tells the user a file arrived and where it was saved. */
export function fileNotice(
  from: { fingerprint: string; email?: string; name?: string },
  to: string,
  header: FileHeader,
  savedAt: string,
  id: string,
): Buffer {
  const sender = from.email ?? `${from.fingerprint.toLowerCase()}@kith`;
  const subject = `File received: ${header.name}`.replace(/[^\x20-\x7e]/g, '?');
  return Buffer.from(
    [
      `From: <${sender}>`,
      `To: <${to}>`,
      `Subject: ${subject}`,
      `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <${id}.file@kith>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      `${from.name ?? sender} sent you a file with Kith.`,
      '',
      `  name:  ${header.name}`,
      `  size:  ${header.size} bytes`,
      `  saved: ${savedAt}`,
      '',
    ].join('\r\n'),
    'utf8',
  );
}

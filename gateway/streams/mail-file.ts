/**
 * `KITH-MAIL-FILE/1` and `/2` payloads (docs/protocol.md 8.3): a mail submitted over SMTP with attachments
 * above `streams.linkAttachmentsAbove` travels as one header line, the mail with those attachments'
 * bodies taken out (the "stub"), then the attachments' decoded bytes one after the other. The
 * recipient puts the stub into the INBOX as soon as it is stored, each linked part turned into a
 * FileLink to its own gateway, and the attachments stream behind it.
 */
export const MAIL_FILE_MAGIC = 'KITH-MAIL-FILE/1 ';
/** The form with more than one file (docs/protocol.md r29): a version-1 recipient would save them as one. */
export const MAIL_FILES_MAGIC = 'KITH-MAIL-FILE/2 ';
/** Longest header line read (the JSON names the files and their sizes). */
export const MAIL_FILE_MAX_HEADER = 4096;
/** Most attachments linked in one mail (the header line must stay within MAIL_FILE_MAX_HEADER). */
export const MAIL_FILE_MAX_FILES = 16;
/** The field the sender leaves in the k-th linked part's header (`X-Kith-Linked-File: k`); the recipient replaces it. */
export const LINKED_FIELD_NAME = 'X-Kith-Linked-File';
/** The field of the first (or only) linked part. */
export const LINKED_FIELD = linkedField(1);

export function linkedField(k: number): string {
  return `${LINKED_FIELD_NAME}: ${k}`;
}

export interface MailFile {
  /** The attachment's file name (the recipient keeps the last path component only). */
  name: string;
  /** Decoded bytes. */
  size: number;
}

export interface MailFileHeader extends MailFile {
  /** Bytes of the stub mail that follow the header line. */
  mail: number;
  /**
   * Every linked file in payload order, the first one being `name`/`size`. On the wire only when
   * there is more than one (a one-file header is the same as before there could be several).
   */
  files: MailFile[];
}

/** The header line; `width` pads the JSON with spaces (JSON whitespace) to a fixed length in bytes. */
export function encodeMailFileHeader(
  header: { name: string; size: number; mail: number; files?: MailFile[] },
  width = 0,
): Buffer {
  const files = header.files && header.files.length > 1 ? header.files : undefined;
  const json = JSON.stringify({
    name: files?.[0].name ?? header.name,
    size: files?.[0].size ?? header.size,
    mail: header.mail,
    ...(files ? { files: files.map((f) => ({ name: f.name, size: f.size })) } : {}),
  });
  const magic = files ? MAIL_FILES_MAGIC : MAIL_FILE_MAGIC;
  const bytes = Buffer.byteLength(magic + json) + 1;
  return Buffer.from(magic + json + ' '.repeat(Math.max(0, width - bytes)) + '\n');
}

const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
const lastComponent = (name: string) => name.replace(/\\/g, '/').split('/').pop() || 'file';

/** The header of a `KITH-MAIL-FILE/1` payload, or undefined when `start` is something else. */
export function parseMailFileHeader(start: Buffer): { header: MailFileHeader; offset: number } | undefined {
  const magic = start.subarray(0, MAIL_FILE_MAGIC.length).toString('latin1');
  const several = magic === MAIL_FILES_MAGIC;
  if (magic !== MAIL_FILE_MAGIC && !several) return undefined;
  const end = start.indexOf(0x0a);
  if (end < 0) return undefined;
  try {
    const h = JSON.parse(start.subarray(MAIL_FILE_MAGIC.length, end).toString('utf8')) as {
      name?: unknown;
      size?: unknown;
      mail?: unknown;
      files?: unknown;
    };
    if (typeof h.name !== 'string' || !count(h.size) || !count(h.mail)) return undefined;
    let files: MailFile[] = [{ name: lastComponent(h.name), size: h.size }];
    if (several !== (h.files !== undefined)) return undefined; // version 2 and only version 2 names several
    if (h.files !== undefined) {
      if (!Array.isArray(h.files) || h.files.length < 1 || h.files.length > MAIL_FILE_MAX_FILES)
        return undefined;
      files = [];
      for (const f of h.files as { name?: unknown; size?: unknown }[]) {
        if (typeof f?.name !== 'string' || !count(f.size)) return undefined;
        files.push({ name: lastComponent(f.name), size: f.size });
      }
      if (files[0].size !== h.size) return undefined;
    }
    return { header: { name: files[0].name, size: files[0].size, mail: h.mail, files }, offset: end + 1 };
  } catch {
    return undefined;
  }
}

/**
 * Where each linked file's bytes are in the payload: after the header line and the stub, one after
 * the other; a file the payload ends inside is cut there (a wrong size in the header cannot make the
 * recipient read past the payload).
 */
export function mailFileRanges(
  parsed: { header: MailFileHeader; offset: number },
  payloadSize: number,
): { name: string; offset: number; size: number }[] {
  let at = parsed.offset + parsed.header.mail;
  return parsed.header.files.map((f) => {
    const offset = Math.min(at, payloadSize);
    const size = Math.max(0, Math.min(f.size, payloadSize - offset));
    at += f.size;
    return { name: f.name, offset, size };
  });
}

/** How the k-th linked part says where its file is (k from 1). */
export type LinkTarget = { url: string } | { saved: string };

/**
 * The stub as the recipient's INBOX gets it: each linked part says where its file plays
 * (`X-Mozilla-Cloud-Part`, the field Thunderbird gives FileLink attachments), or, without a
 * streams server, where it was saved. `links[k - 1]` replaces `X-Kith-Linked-File: k`.
 */
export function stubWithLinks(stub: Buffer, links: readonly LinkTarget[]): Buffer {
  const pieces: Buffer[] = [];
  let from = 0;
  const found = links
    .map((link, i) => ({ link, at: stub.indexOf(`${linkedField(i + 1)}\r\n`, from) }))
    .filter((x) => x.at >= 0)
    .sort((x, y) => x.at - y.at);
  for (const { link, at } of found) {
    const field =
      'url' in link
        ? `X-Mozilla-Cloud-Part: cloudFile; url=${link.url}`
        : `X-Kith-Saved-File: ${link.saved.replace(/[^\x20-\x7e]/g, '?')}`;
    pieces.push(stub.subarray(from, at), Buffer.from(field));
    from = at + stub.subarray(at).indexOf('\r\n');
  }
  pieces.push(stub.subarray(from));
  return Buffer.concat(pieces);
}

/** One linked file: stubWithLinks with a single link. */
export function stubWithLink(stub: Buffer, link: LinkTarget): Buffer {
  return stubWithLinks(stub, [link]);
}

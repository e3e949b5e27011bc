/**
 * `KITH-MAIL-FILE/1` payloads (docs/protocol.md 8.3): a mail submitted over SMTP whose largest
 * attachment is above `streams.linkAttachmentsAbove` travels as one header line, the mail with
 * that attachment's body taken out (the "stub"), then the attachment's decoded bytes. The
 * recipient puts the stub into the INBOX as soon as it is stored, the attachment part turned
 * into a FileLink to its own gateway, and the attachment streams behind it.
 */
export const MAIL_FILE_MAGIC = 'KITH-MAIL-FILE/1 ';
/** Longest header line read (the JSON names a file and three numbers). */
export const MAIL_FILE_MAX_HEADER = 4096;
/** The field the sender leaves in the linked part's header; the recipient replaces it. */
export const LINKED_FIELD = 'X-Kith-Linked-File: 1';

export interface MailFileHeader {
  /** The attachment's file name (the recipient keeps the last path component only). */
  name: string;
  /** Decoded bytes of the attachment. */
  size: number;
  /** Bytes of the stub mail that follow the header line. */
  mail: number;
}

/** The header line; `width` pads the JSON with spaces (JSON whitespace) to a fixed length. */
export function encodeMailFileHeader(header: MailFileHeader, width = 0): Buffer {
  const json = JSON.stringify({ name: header.name, size: header.size, mail: header.mail });
  return Buffer.from(MAIL_FILE_MAGIC + json.padEnd(width - MAIL_FILE_MAGIC.length - 1, ' ') + '\n');
}

/** The header of a `KITH-MAIL-FILE/1` payload, or undefined when `start` is something else. */
export function parseMailFileHeader(start: Buffer): { header: MailFileHeader; offset: number } | undefined {
  if (!start.subarray(0, MAIL_FILE_MAGIC.length).equals(Buffer.from(MAIL_FILE_MAGIC))) return undefined;
  const end = start.indexOf(0x0a);
  if (end < 0) return undefined;
  try {
    const h = JSON.parse(start.subarray(MAIL_FILE_MAGIC.length, end).toString('utf8')) as MailFileHeader;
    const count = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
    if (typeof h.name !== 'string' || !count(h.size) || !count(h.mail)) return undefined;
    const name = h.name.replace(/\\/g, '/').split('/').pop() || 'file';
    return { header: { name, size: h.size, mail: h.mail }, offset: end + 1 };
  } catch {
    return undefined;
  }
}

/**
 * The stub as the recipient's INBOX gets it: the linked part says where the file plays
 * (`X-Mozilla-Cloud-Part`, the field Thunderbird gives FileLink attachments), or, without a
 * streams server, where it was saved.
 */
export function stubWithLink(stub: Buffer, link: { url: string } | { saved: string }): Buffer {
  const field =
    'url' in link
      ? `X-Mozilla-Cloud-Part: cloudFile; url=${link.url}`
      : `X-Kith-Saved-File: ${link.saved.replace(/[^\x20-\x7e]/g, '?')}`;
  const at = stub.indexOf(LINKED_FIELD);
  if (at < 0) return stub;
  return Buffer.concat([stub.subarray(0, at), Buffer.from(field), stub.subarray(at + LINKED_FIELD.length)]);
}

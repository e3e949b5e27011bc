import addressparser from 'nodemailer/lib/addressparser';
import { KithError } from '../../common/errors.ts';
import { fieldsNamed, isUtf8OrAscii, type ParsedHeader } from './header-section.ts';
import { isOwnAddress } from './addresses.ts';

/** Limits on the header section: a flood of fields costs every reader of the message. */
export interface HeaderLimits {
  /** Largest header section in bytes. */
  maxHeaderBytes: number;
  /** Most header fields. */
  maxHeaderFields: number;
}

export const DEFAULT_HEADER_LIMITS: HeaderLimits = { maxHeaderBytes: 256 * 1024, maxHeaderFields: 1000 };

/**
 * Decides whether a submitted header section may go out under this account. Throws the
 * KithError that becomes the SMTP reply.
 *
 * - Malformed lines are refused rather than repaired: the message is signed and sent byte
 *   for byte, so a repair would have to happen here or nowhere, and guessing is worse.
 * - 8-bit header bytes are accepted when they are UTF-8 (RFC 6532), even if the client did
 *   not say SMTPUTF8: the message travels end to end to another Kith gateway, which stores
 *   UTF-8 headers as they are. Other 8-bit bytes have no known charset and would turn into
 *   mojibake at the recipient, so they are refused.
 * - NUL and CR not followed by LF are refused: readers split lines (or end strings) there in
 *   different places, so what one shows as a harmless field another takes for a new one.
 * - Every mailbox in From: (and Sender:, Resent-From:, Resent-Sender:, when present) must be
 *   one of the account's own addresses: the recipient's gateway shows the verified entity, and
 *   a From: the entity does not own would make that display contradict the header; clients
 *   show a Resent-From: as the sender of a forwarded message just as prominently.
 */
export function checkHeader(
  header: Buffer,
  parsed: ParsedHeader,
  ownAddresses: readonly string[],
  limits: HeaderLimits,
): void {
  const nul = header.indexOf(0x00);
  if (nul !== -1) {
    throw new KithError(
      'ERR_SMTP_NUL_IN_HEADER',
      `the header contains a NUL byte (header line ${lineOf(header, nul)})`,
      'the message was not accepted; check the program that wrote it',
    );
  }
  for (let i = header.indexOf(0x0d); i !== -1; i = header.indexOf(0x0d, i + 1)) {
    if (header[i + 1] !== 0x0a) {
      throw new KithError(
        'ERR_SMTP_BARE_CR',
        `the header contains a CR that does not end a line (header line ${lineOf(header, i)})`,
        'lines must end with CRLF (RFC 5322); the message was not accepted',
      );
    }
  }
  if (header.length > limits.maxHeaderBytes) {
    throw headerTooLarge(limits.maxHeaderBytes);
  }
  if (parsed.fields.length > limits.maxHeaderFields) {
    throw new KithError(
      'ERR_SMTP_HEADER_TOO_LARGE',
      `the message has ${parsed.fields.length} header fields, more than the ${limits.maxHeaderFields} accepted`,
    );
  }
  if (parsed.malformedLine !== undefined) {
    throw new KithError(
      'ERR_SMTP_MALFORMED_HEADER',
      `header line ${parsed.malformedLine} is neither a "Name: value" field nor a continuation line`,
      'the message was not accepted; check the program that wrote it',
    );
  }
  if (!isUtf8OrAscii(header)) {
    throw new KithError(
      'ERR_SMTP_8BIT_HEADER',
      'the header contains 8-bit bytes that are not UTF-8',
      'encode non-ASCII header text as RFC 2047 encoded words or UTF-8',
    );
  }
  const from = fieldsNamed(parsed.fields, 'From');
  if (from.length !== 1) {
    throw new KithError(
      'ERR_SMTP_NO_FROM',
      from.length === 0 ? 'the message has no From: header' : 'the message has more than one From: header',
      'a message needs exactly one From: header with your address',
    );
  }
  const senders = ['Sender', 'Resent-From', 'Resent-Sender'].flatMap((n) => fieldsNamed(parsed.fields, n));
  for (const field of [from[0], ...senders]) {
    const mailboxes = mailboxesOf(field.value);
    const foreign = mailboxes.filter((m) => !isOwnAddress(ownAddresses, m));
    if (mailboxes.length === 0 || foreign.length > 0) {
      throw new KithError(
        'ERR_SMTP_SENDER_REFUSED',
        `${field.name}: ${foreign[0] ?? '(no address)'} is not an address of this account`,
        `send as ${ownAddresses.join(' or ')}`,
      );
    }
  }
}

/** The header section is larger than the limit (counted up to and including the empty line that ends it). */
export function headerTooLarge(maxHeaderBytes: number): KithError {
  return new KithError(
    'ERR_SMTP_HEADER_TOO_LARGE',
    `the header section is larger than ${maxHeaderBytes} bytes`,
    'the message was not accepted',
  );
}

/** 1-based line number of a byte offset. */
function lineOf(buf: Buffer, offset: number): number {
  let line = 1;
  for (let i = buf.indexOf(0x0a); i !== -1 && i < offset; i = buf.indexOf(0x0a, i + 1)) line += 1;
  return line;
}

/** The envelope sender check (MAIL FROM). The null sender <> is allowed: read receipts use it (RFC 8098). */
export function checkEnvelopeSender(address: string, ownAddresses: readonly string[]): void {
  if (address === '' || isOwnAddress(ownAddresses, address)) return;
  throw new KithError(
    'ERR_SMTP_SENDER_REFUSED',
    `MAIL FROM:<${address}> is not an address of this account`,
    `send as ${ownAddresses.join(' or ')}`,
  );
}

function mailboxesOf(value: string): string[] {
  return addressparser(value, { flatten: true })
    .map((a) => a.address)
    .filter((a) => a !== '');
}

import addressparser from 'nodemailer/lib/addressparser';
import { headerEnd, parseHeader, type HeaderField } from '../../gateway/smtp/header-section.ts';

/** What the list header fields say about a list. */
export interface ListAddress {
  name: string;
  email: string;
  /** A URL of the archive; List-Archive is added only when there is one. */
  archive?: string;
  /** A chat room: every post that starts no thread of its own joins the room's one conversation. */
  chat?: boolean;
}

/** The Message-ID every post of a chat room refers to, so mail clients show the room as one thread. */
export function roomThread(email: string): string {
  return `<room.${listId(email)}@kith>`;
}

/** The RFC 2369 / RFC 2919 fields (lower case): a list writes its own and drops any earlier ones. */
export const LIST_FIELD_NAMES: readonly string[] = [
  'list-id',
  'list-post',
  'list-help',
  'list-subscribe',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'list-archive',
  'list-owner',
];

/**
 * Header fields a list removes from a post before it goes out. Received-like fields and the
 * submission's routing would tell every subscriber where and how the poster connected; Kith's
 * own fields and Authentication-Results are the receiving gateway's to write; earlier List-*,
 * Precedence and X-Loop fields are replaced by the list's own; Bcc must never be distributed;
 * read-receipt requests would make each subscriber's client report back to the poster.
 */
const STRIPPED = new Set([
  'received',
  'return-path',
  'x-originating-ip',
  'x-forwarded-for',
  'x-forwarded-to',
  'x-forwarded-encrypted',
  'delivered-to',
  'x-envelope-from',
  'x-envelope-to',
  'authentication-results',
  'arc-authentication-results',
  'arc-message-signature',
  'arc-seal',
  'dkim-signature',
  'bcc',
  'sender',
  'errors-to',
  'disposition-notification-to',
  'return-receipt-to',
  'precedence',
  'x-loop',
  'x-original-from',
  ...LIST_FIELD_NAMES,
]);

function stripped(name: string): boolean {
  const lower = name.trim().toLowerCase();
  return STRIPPED.has(lower) || lower.startsWith('x-kith-');
}

/** RFC 2919 list-id: the list address with "@" turned into "." (dev@example.org -> dev.example.org). */
export function listId(email: string): string {
  return email.toLowerCase().replace('@', '.');
}

/** The RFC 2369 / RFC 2919 fields every copy carries; commands are mailto: the list's address. */
export function listHeaderFields(list: ListAddress): string[] {
  const mailto = (subject?: string) => `<mailto:${list.email}${subject ? `?subject=${subject}` : ''}>`;
  const fields = [
    `List-Id: ${phrase(list.name)} <${listId(list.email)}>`,
    `List-Post: ${mailto()}`,
    `List-Help: ${mailto('help')}`,
    `List-Subscribe: ${mailto('subscribe')}`,
    `List-Unsubscribe: ${mailto('unsubscribe')}`,
  ];
  if (list.archive) fields.push(`List-Archive: <${list.archive}>`);
  fields.push('Precedence: list', `X-Loop: ${list.email}`);
  return fields;
}

/** The poster as the copy names them. */
export interface Poster {
  name?: string;
  email?: string;
}

/**
 * The copy every subscriber gets, from the post as the poster submitted it. Leaking fields are
 * removed (STRIPPED), the list fields are added on top, and From: becomes the list's address
 * with the poster's name ("Alice via dev"): the list signs the copy, so the subscriber's gateway
 * can verify From: against the signer (kith=pass) and "Reply" goes to the list; the poster's own
 * From: is kept in X-Original-From (as Google Groups and Mailman's DMARC mode do). Body bytes,
 * Message-ID, In-Reply-To and References stay as they were, so threading works.
 */
export function rewritePost(raw: Buffer, list: ListAddress, poster: Poster): Buffer {
  const { header, body, fields } = splitMessage(raw);
  const kept: Buffer[] = [];
  let originalFrom: string | undefined;
  const threaded = fields.some((f) => ['in-reply-to', 'references'].includes(f.name.toLowerCase()));
  for (const field of fields) {
    if (field.name.toLowerCase() === 'from') {
      originalFrom = field.value;
      continue;
    }
    if (stripped(field.name)) continue;
    kept.push(withLineEnd(header.subarray(field.start, field.end)));
  }
  const name = posterName(originalFrom, poster);
  const added = [
    `From: ${phrase(`${name} via ${list.name}`)} <${list.email}>`,
    ...(originalFrom ? [`X-Original-From: ${originalFrom.replace(/[\r\n]+/g, ' ')}`] : []),
    ...listHeaderFields(list),
    ...(list.chat && !threaded
      ? [`In-Reply-To: ${roomThread(list.email)}`, `References: ${roomThread(list.email)}`]
      : []),
  ];
  return joinMessage(added, kept, body);
}

/** A message's header section (without the empty line), its fields, and the rest (from that line on). */
export function splitMessage(raw: Buffer): { header: Buffer; body: Buffer; fields: HeaderField[] } {
  const end = headerEnd(raw);
  const header = end === -1 ? raw : raw.subarray(0, end);
  const body = end === -1 ? Buffer.alloc(0) : raw.subarray(end);
  return { header, body, fields: parseHeader(header).fields };
}

/** A message from fields written anew (first), fields kept as they were, and the body `splitMessage` gave. */
export function joinMessage(added: string[], kept: Buffer[], body: Buffer): Buffer {
  const head = Buffer.from(added.map((f) => `${f}\r\n`).join(''));
  return Buffer.concat([head, ...kept, Buffer.from('\r\n'), body]);
}

/** Header fields of a message by name (case-insensitive), values unfolded. */
export function headerValues(raw: Buffer, name: string): string[] {
  const { fields } = splitMessage(raw);
  const lower = name.toLowerCase();
  return fields.filter((f: HeaderField) => f.name.toLowerCase() === lower).map((f) => f.value);
}

/** True when an X-Loop field names this list: the post has been through it already. */
export function hasOwnLoopMark(raw: Buffer, listEmail: string): boolean {
  return headerValues(raw, 'X-Loop').some((v) => v.trim().toLowerCase() === listEmail.toLowerCase());
}

/** The poster's display name: the From: phrase, else what the list knows, else the address. */
export function posterName(from: string | undefined, poster: Poster): string {
  const parsed = from ? addressparser(from, { flatten: true })[0] : undefined;
  const name = parsed?.name || poster.name || parsed?.address || poster.email || 'someone';
  return name.replace(/[\r\n]+/g, ' ');
}

/** A display name as an RFC 5322 phrase: quoted when it is plain ASCII, encoded-word otherwise. */
export function phrase(text: string): string {
  if (/^[\x20-\x7e]*$/.test(text)) return `"${text.replace(/["\\]/g, '\\$&')}"`;
  return `=?UTF-8?B?${Buffer.from(text).toString('base64')}?=`;
}

/** A header field's bytes ending in a line end (the last field of a header section may lack one). */
export function withLineEnd(field: Buffer): Buffer {
  if (field.length > 0 && field[field.length - 1] === 0x0a) return field;
  return Buffer.concat([field, Buffer.from('\r\n')]);
}

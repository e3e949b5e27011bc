import { parseAddressList, type ImapAddress } from './address.ts';
import { headerValue, type HeaderField } from './header.ts';
import type { MimePart } from './structure.ts';

// IMAP response syntax for precomputed structures. Strings are latin1 ("binary"): one char per byte.

/** An IMAP nstring: NIL, a quoted string, or a literal when the value has CR, LF, NUL or 8-bit bytes. */
export function nstring(value: string | null | undefined): string {
  if (value === null || value === undefined) return 'NIL';
  return astring(value);
}

/** An IMAP string (never NIL). */
export function astring(value: string): string {
  if (/[\r\n\0\x80-\xff]/.test(value) || value.length > 1000) return `{${value.length}}\r\n${value}`;
  return '"' + value.replace(/(["\\])/g, '\\$1') + '"';
}

function addressList(list: ImapAddress[] | null): string {
  if (!list || list.length === 0) return 'NIL';
  return (
    '(' +
    list
      .map((a) => `(${nstring(a.name)} ${nstring(a.adl)} ${nstring(a.mailbox)} ${nstring(a.host)})`)
      .join('') +
    ')'
  );
}

/** The ENVELOPE of a message entity (RFC 3501 7.4.2). Sender and Reply-To default to From. */
export function envelopeOf(fields: readonly HeaderField[]): string {
  const addr = (key: string): ImapAddress[] | null => {
    const v = headerValue(fields, key);
    if (v === undefined) return null;
    const list = parseAddressList(v);
    return list.length ? list : null;
  };
  const from = addr('from');
  const sender = addr('sender') ?? from;
  const replyTo = addr('reply-to') ?? from;
  return (
    '(' +
    [
      nstring(headerValue(fields, 'date') ?? null),
      nstring(headerValue(fields, 'subject') ?? null),
      addressList(from),
      addressList(sender),
      addressList(replyTo),
      addressList(addr('to')),
      addressList(addr('cc')),
      addressList(addr('bcc')),
      nstring(headerValue(fields, 'in-reply-to') ?? null),
      nstring(headerValue(fields, 'message-id')?.trim() ?? null),
    ].join(' ') +
    ')'
  );
}

function params(list: [string, string][]): string {
  if (list.length === 0) return 'NIL';
  return '(' + list.map(([k, v]) => `${astring(k.toUpperCase())} ${astring(v)}`).join(' ') + ')';
}

function disposition(part: MimePart): string {
  if (!part.disposition) return 'NIL';
  return `(${astring(part.disposition.type.toUpperCase())} ${params(part.disposition.params)})`;
}

function language(part: MimePart): string {
  if (!part.language || part.language.length === 0) return 'NIL';
  if (part.language.length === 1) return astring(part.language[0]!);
  return '(' + part.language.map(astring).join(' ') + ')';
}

/** BODYSTRUCTURE (extended = true) or BODY (extended = false) of an entity's body. */
export function bodyStructureOf(part: MimePart, extended: boolean): string {
  if (part.children) {
    const kids = part.children.map((c) => bodyStructureOf(c, extended)).join('');
    const sub = astring(part.subtype.toUpperCase());
    if (!extended) return `(${kids} ${sub})`;
    return `(${kids} ${sub} ${params(part.params)} ${disposition(part)} ${language(part)} ${nstring(part.location)})`;
  }
  const size = part.end - part.bodyStart;
  const fields = [
    astring(part.type.toUpperCase()),
    astring(part.subtype.toUpperCase()),
    params(part.params),
    nstring(part.id),
    nstring(part.description),
    astring((part.encoding ?? '7bit').toUpperCase()),
    String(size),
  ];
  if (part.message) {
    fields.push(envelopeOf(part.message.fields ?? []));
    fields.push(bodyStructureOf(part.message, extended));
    fields.push(String(part.lines));
  } else if (part.type === 'text') {
    fields.push(String(part.lines));
  }
  if (extended) {
    fields.push(nstring(part.md5), disposition(part), language(part), nstring(part.location));
  }
  return '(' + fields.join(' ') + ')';
}

import type { InboundMessage } from './delivery.ts';
import { fieldsNamed, headerEnd, parseHeader } from './smtp/header-section.ts';
import { isOwnAddress } from './smtp/addresses.ts';
import addressparser from 'nodemailer/lib/addressparser';

/** Verdict on who sent an incoming message, as the Authentication-Results header states it. */
export type SenderVerdict = 'pass' | 'policy' | 'fail' | 'unchecked';

/**
 * pass: the OpenPGP signature verified and From: names the signing entity's address (or the
 * entity has no known address to compare). policy: the signature verified, but From: shows
 * an address the entity does not have, so the display name of the message is not to be
 * trusted. fail: the signature did not verify; nothing about the sender is vouched for.
 * unchecked: the claimed sender's key is not held here (first contact), so there was nothing to
 * check the signature against; nothing is vouched for either, but nothing failed.
 */
export function senderVerdict(message: InboundMessage, fromAddresses: readonly string[]): SenderVerdict {
  if (!message.verified) return message.senderKeyKnown === false ? 'unchecked' : 'fail';
  const email = message.sender.email;
  if (email === undefined) return 'pass';
  return fromAddresses.length > 0 && fromAddresses.every((a) => isOwnAddress([email], a)) ? 'pass' : 'policy';
}

/**
 * Header fields a sender must not be able to set: ours by definition. Decided on the name as
 * mail readers see it (trimmed, any case: `X-Kith-Sender :` is the same field to mailparser and
 * to most clients), and for Authentication-Results on any mention of our authserv-id: a
 * comment before it (`(x) kith;`), our method name (`kith=pass`) under another id, any form of
 * it could be shown as our verdict, and no honest server upstream writes one.
 */
function isForged(name: string, value: string, authservId: string): boolean {
  const lower = name.trim().toLowerCase();
  if (lower.startsWith('x-kith-')) return true;
  if (lower !== 'authentication-results') return false;
  const id = authservId.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^a-z0-9-])${id}([^a-z0-9-]|$)`, 'i').test(value);
}

/**
 * The header section as fields, more leniently than parseHeader: every line that does not
 * start with white space begins a field named by what stands before its first colon (a name
 * with spaces around it included), and CR, LF and CRLF all end a line. What matters here is
 * not whether a field is well formed but whether any reader could take it for one of ours.
 */
function lenientFields(header: Buffer): Array<{ name: string; value: string; start: number; end: number }> {
  const text = header.toString('latin1');
  const fields: Array<{ name: string; value: string; start: number; end: number }> = [];
  const lineEnd = /\r\n|\n|\r/g;
  let start = 0;
  while (start < text.length) {
    lineEnd.lastIndex = start;
    const m = lineEnd.exec(text);
    const next = m ? m.index + m[0].length : text.length;
    const line = text.slice(start, m ? m.index : text.length);
    if (line === '') break; // the empty line before the body
    const last = fields[fields.length - 1];
    if ((line[0] === ' ' || line[0] === '\t') && last) {
      last.value += line;
      last.end = next;
    } else {
      const colon = line.indexOf(':');
      fields.push({
        name: colon === -1 ? line : line.slice(0, colon),
        value: colon === -1 ? '' : line.slice(colon + 1),
        start,
        end: next,
      });
    }
    start = next;
  }
  return fields;
}

function headerText(value: string): string {
  return value.replace(/[\p{Cc}";\\]+/gu, ' ').trim();
}

/**
 * The message as it goes into the recipient's INBOX: forged Kith headers removed, then on
 * top an Authentication-Results field (RFC 8601) naming the verified sender entity, an
 * X-Kith-Sender line mail clients can show as a column, and X-Kith-Message-Id (the mailbox
 * store ties complaints to it). Everything else stays byte for byte.
 */
export function prepareInbound(message: InboundMessage, authservId = 'kith'): Buffer {
  const raw = message.raw;
  const end = headerEnd(raw);
  const header = end === -1 ? raw : raw.subarray(0, end);
  const parsed = parseHeader(header);
  const from = fieldsNamed(parsed.fields, 'From')
    .flatMap((f) => addressparser(f.value, { flatten: true }))
    .map((a) => a.address)
    .filter(Boolean);
  const verdict = senderVerdict(message, from);
  const fpr = message.sender.fingerprint;

  const kept: Buffer[] = [];
  let cursor = 0;
  for (const field of lenientFields(header)) {
    if (!isForged(field.name, field.value, authservId)) continue;
    kept.push(raw.subarray(cursor, field.start));
    cursor = field.end;
  }
  kept.push(raw.subarray(cursor));

  const who = message.sender.email
    ? `${message.sender.name ? `${headerText(message.sender.name)} ` : ''}<${headerText(message.sender.email)}>`
    : '(no address known)';
  const results = {
    pass: `kith=pass header.from=${from[0] ?? 'none'} policy.entity=${fpr}`,
    policy: `kith=policy reason="From: is not an address of the signing entity" header.from=${from[0] ?? 'none'} policy.entity=${fpr}`,
    fail: 'kith=fail reason="OpenPGP signature did not verify"',
    unchecked: `kith=neutral reason="the sender's key is not known here; the signature was not checked"`,
  }[verdict];
  const senderLine = {
    pass: `${who} verified key ${fpr}`,
    policy: `${who} verified key ${fpr}; the From: address is not theirs`,
    fail: 'UNVERIFIED: the signature did not verify; the sender is unknown',
    // The claimed fingerprint is named so the user can answer: a reply reaches that key's owner only.
    unchecked: `UNVERIFIED: claims to be key ${fpr}, which is not known here (write to ${fpr.toLowerCase()}@kith to reach that key)`,
  }[verdict];
  const added = [
    `Authentication-Results: ${authservId}; ${results}`,
    `X-Kith-Sender: ${senderLine}`,
    `X-Kith-Message-Id: ${message.id}`,
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(added), ...kept]);
}

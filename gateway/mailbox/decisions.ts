// Pure decisions of the mailbox store, kept apart from SQL so they can be tested directly.

/** The special-use mailboxes every account has from the start (RFC 6154 attributes). */
export const SPECIAL_MAILBOXES: readonly { name: string; use: string | null }[] = [
  { name: 'INBOX', use: null },
  { name: 'Sent', use: '\\Sent' },
  { name: 'Drafts', use: '\\Drafts' },
  { name: 'Trash', use: '\\Trash' },
  { name: 'Junk', use: '\\Junk' },
  { name: 'Archive', use: '\\Archive' },
];

/** The hierarchy delimiter of mailbox names. */
export const DELIMITER = '/';

/** What to do with a message's complaint candidate after a change. */
export type ComplaintAction = 'record' | 'withdraw' | 'keep';

/** How a mailbox counts for complaints, from its special-use attribute. */
export type MailboxKind = 'junk' | 'trash' | 'normal';

/** The mailbox kind of a special-use attribute (\Junk, \Trash, anything else). */
export function mailboxKind(specialUse: string | null): MailboxKind {
  if (specialUse === '\\Junk') return 'junk';
  if (specialUse === '\\Trash') return 'trash';
  return 'normal';
}

/** What happened to one copy of a message, as complaintAction sees it. */
export type ComplaintTrigger =
  /** A copy arrived in a mailbox (APPEND, delivery, COPY or MOVE destination) with these flags. */
  | { kind: 'arrived'; into: MailboxKind; flags: readonly string[] }
  /** A copy's flags changed (STORE) in a mailbox of this kind. */
  | { kind: 'flags'; in: MailboxKind; added: readonly string[]; removed: readonly string[] };

/**
 * Whether a change records, withdraws or keeps the message's complaint. Moving a message into
 * Junk or flagging it $Junk records one. Only a clear "this is not spam" withdraws it: the message
 * moved or copied into a normal mailbox (not Trash) without $Junk, $NotJunk set, or $Junk cleared
 * while the copy is in a normal mailbox. Deleting it, expunging it or moving it to Trash is what
 * users do with spam (Thunderbird's delete in Junk is a move to Trash), so the complaint stands.
 */
export function complaintAction(trigger: ComplaintTrigger, active: boolean): ComplaintAction {
  const has = (flags: readonly string[], f: string): boolean => flags.some((x) => x.toLowerCase() === f);
  let junk: boolean;
  let notJunk: boolean;
  if (trigger.kind === 'arrived') {
    // Moving into Junk says "spam" whatever flags the copy still carries.
    junk = trigger.into === 'junk' || (has(trigger.flags, '$junk') && !has(trigger.flags, '$notjunk'));
    notJunk = !junk && (trigger.into === 'normal' || has(trigger.flags, '$notjunk'));
  } else {
    notJunk = has(trigger.added, '$notjunk') || (trigger.in === 'normal' && has(trigger.removed, '$junk'));
    junk = !notJunk && has(trigger.added, '$junk');
  }
  if (notJunk && active) return 'withdraw';
  if (junk && !active) return 'record';
  return 'keep';
}

/**
 * Is this change the recipient reading a message and keeping it (the *seen* verdict of spam
 * control's first-contact credit, docs/protocol.md 15.7)? \Seen set on a copy in a normal mailbox
 * while no complaint stands. Why only then: a message read in Junk, or complained about, is no
 * good verdict; one moved to Junk after it was read still gets its complaint (and the hops take
 * the good verdict back).
 */
export function readAndKept(trigger: ComplaintTrigger, active: boolean): boolean {
  return (
    !active &&
    trigger.kind === 'flags' &&
    trigger.in === 'normal' &&
    trigger.added.some((f) => f.toLowerCase() === '\\seen')
  );
}

/** Canonical form of a mailbox name: INBOX is case-insensitive (RFC 3501 5.1), others are not. */
export function canonicalName(name: string): string {
  if (name.toUpperCase() === 'INBOX') return 'INBOX';
  if (name.toUpperCase().startsWith('INBOX' + DELIMITER)) return 'INBOX' + name.slice(5);
  return name;
}

/** Why a mailbox name is unusable, or null if it is fine. */
export function invalidName(name: string): string | null {
  if (name === '') return 'empty mailbox name';
  if (name.length > 512) return 'mailbox name too long';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f*%]/.test(name)) return 'mailbox name contains forbidden characters';
  if (name.startsWith(DELIMITER) || name.endsWith(DELIMITER) || name.includes(DELIMITER + DELIMITER)) {
    return 'mailbox name has an empty level';
  }
  return null;
}

/** Applies a STORE operation to a flag list; returns the new list (order kept, no duplicates). */
export function applyFlags(
  current: readonly string[],
  mode: 'set' | 'add' | 'remove',
  flags: readonly string[],
): string[] {
  const lower = (f: string): string => f.toLowerCase();
  if (mode === 'set') return dedupe(flags);
  if (mode === 'add') return dedupe([...current, ...flags]);
  const drop = new Set(flags.map(lower));
  return current.filter((f) => !drop.has(lower(f)));
}

function dedupe(flags: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const f of flags) {
    const k = f.toLowerCase();
    if (k === '\\recent' || seen.has(k)) continue;
    seen.add(k);
    out.push(f);
  }
  return out;
}

/** Converts bare LF line ends to CRLF: IMAP sizes and offsets are of the CRLF form. */
export function toCrlf(raw: Buffer): Buffer {
  let bare = false;
  for (let i = raw.indexOf(0x0a); i >= 0; i = raw.indexOf(0x0a, i + 1)) {
    if (i === 0 || raw[i - 1] !== 0x0d) {
      bare = true;
      break;
    }
  }
  if (!bare) return raw;
  const parts: Buffer[] = [];
  let last = 0;
  for (let i = raw.indexOf(0x0a); i >= 0; i = raw.indexOf(0x0a, i + 1)) {
    if (i === 0 || raw[i - 1] !== 0x0d) {
      parts.push(raw.subarray(last, i), CRLF);
      last = i + 1;
    }
  }
  parts.push(raw.subarray(last));
  return Buffer.concat(parts);
}
const CRLF = Buffer.from('\r\n');

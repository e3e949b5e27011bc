import { astring } from '../mime/imap-format.ts';

/** A flag list as IMAP writes it. */
export function formatFlags(flags: readonly string[]): string {
  return '(' + flags.join(' ') + ')';
}

/** INTERNALDATE form: "17-Jul-1996 02:44:25 -0700" (we always write UTC). */
export function formatInternalDate(d: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `"${pad(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(
    d.getUTCMinutes(),
  )}:${pad(d.getUTCSeconds())} +0000"`;
}

export const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Parses an IMAP date-time ("17-Jul-1996 02:44:25 -0700"); null when malformed. */
export function parseDateTime(s: string): Date | null {
  const m = /^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(s);
  if (!m) return null;
  const month = MONTHS.findIndex((x) => x.toLowerCase() === m[2]!.toLowerCase());
  if (month < 0) return null;
  const utc = Date.UTC(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  const offset = (Number(m[8]) * 60 + Number(m[9])) * (m[7] === '+' ? 1 : -1);
  const d = new Date(utc - offset * 60_000);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Parses an IMAP date ("1-Feb-1994") to midnight UTC of that day; null when malformed. */
export function parseDate(s: string): Date | null {
  const m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(s);
  if (!m) return null;
  const month = MONTHS.findIndex((x) => x.toLowerCase() === m[2]!.toLowerCase());
  if (month < 0) return null;
  return new Date(Date.UTC(Number(m[3]), month, Number(m[1])));
}

/** A mailbox name for a response: quoted, or a literal for 8-bit names. */
export function mailboxString(name: string): string {
  return astring(Buffer.from(name, 'utf8').toString('latin1'));
}

import { ParseError, utf8Of, type Value } from '../values.ts';
import type { CommandContext } from '../context.ts';
import { decodeMailboxName, encodeMailboxName } from '../utf7.ts';
import { mailboxString } from '../format.ts';

/** An astring argument (UTF-8), or a BAD. */
export function stringArg(args: readonly Value[], i: number, what: string): string {
  const v = utf8Of(args[i]);
  if (v === null) throw new ParseError(`missing or invalid ${what}`);
  return v;
}

/** A mailbox name argument: modified UTF-7 unless the client enabled UTF8=ACCEPT. */
export function mailboxArg(ctx: CommandContext, args: readonly Value[], i: number): string {
  const raw = stringArg(args, i, 'mailbox name');
  return ctx.enabled.has('UTF8=ACCEPT') ? raw : decodeMailboxName(raw);
}

/** A mailbox name as the client expects it in responses. */
export function mailboxOut(ctx: CommandContext, name: string): string {
  return mailboxString(ctx.enabled.has('UTF8=ACCEPT') ? name : encodeMailboxName(name));
}

/** An atom argument, upper-cased. */
export function atomArg(args: readonly Value[], i: number, what: string): string {
  const v = args[i];
  if (!v || v.t !== 'atom') throw new ParseError(`missing or invalid ${what}`);
  return v.v.toUpperCase();
}

/** Refuses extra arguments. */
export function noMore(args: readonly Value[], count: number): void {
  if (args.length > count) throw new ParseError('too many arguments');
}

/** A flag list "(\Seen $Junk)" or a single flag. */
export function flagList(v: Value | undefined): string[] {
  if (!v) throw new ParseError('missing flag list');
  const items = v.t === 'list' ? v.v : [v];
  return items.map((f) => {
    if (f.t !== 'atom' || !/^\\?[^\s(){%*"\\\]]+$/.test(f.v)) throw new ParseError('invalid flag');
    return normalizeFlag(f.v);
  });
}

const SYSTEM = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft', '\\Recent'];

/** System flags in their canonical case (clients compare them case-insensitively, some do not). */
export function normalizeFlag(flag: string): string {
  if (!flag.startsWith('\\')) return flag;
  const hit = SYSTEM.find((s) => s.toLowerCase() === flag.toLowerCase());
  if (!hit) throw new ParseError(`unknown system flag ${flag}`);
  return hit;
}

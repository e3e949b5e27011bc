import { AUTHED, ok, type CommandContext, type CommandSpec } from '../context.ts';
import type { MailboxInfo } from '../../mailbox/types.ts';
import { ParseError, textOf, type Value } from '../values.ts';
import { decodeMailboxName } from '../utf7.ts';
import { mailboxOut, stringArg } from './args.ts';
import { statusItems, statusLine } from './status.ts';

/** Turns a LIST pattern into a RegExp: '*' matches anything, '%' anything but the delimiter. */
export function patternToRegExp(pattern: string): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '%') re += '[^/]*';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  // INBOX matches case-insensitively; the rest of the name does not.
  return new RegExp(`^${re}$`, 's');
}

function matches(name: string, pattern: string): boolean {
  if (patternToRegExp(pattern).test(name)) return true;
  return (
    name.toUpperCase().startsWith('INBOX') && patternToRegExp(pattern.replace(/^inbox/i, 'INBOX')).test(name)
  );
}

// LIST-EXTENDED selection options (REMOTE: there are no remote mailboxes) and return options.
const SELECTION = new Set(['SUBSCRIBED', 'REMOTE', 'RECURSIVEMATCH', 'SPECIAL-USE']);
const RETURNS = new Set(['SUBSCRIBED', 'CHILDREN', 'SPECIAL-USE']);

function listCommand(lsub: boolean): CommandSpec {
  return {
    states: AUTHED,
    async run(ctx, cmd) {
      const args = [...cmd.args];
      const selection = new Set<string>();
      const returns = new Set<string>();
      let statusWanted: string[] | null = null;
      if (!lsub && args[0]?.t === 'list') {
        for (const v of (args.shift() as { v: Value[] }).v) selection.add((textOf(v) ?? '').toUpperCase());
        // RFC 5258 3: an unknown selection option, or RECURSIVEMATCH alone, is BAD.
        for (const o of selection)
          if (!SELECTION.has(o)) throw new ParseError(`unknown LIST selection option ${o.slice(0, 30)}`);
        if (selection.has('RECURSIVEMATCH') && !selection.has('SUBSCRIBED') && !selection.has('SPECIAL-USE'))
          throw new ParseError('RECURSIVEMATCH needs another selection option');
      }
      const reference = decode(ctx, stringArg(args, 0, 'reference'));
      const patternArg = args[1];
      if (!patternArg) throw new ParseError('missing mailbox pattern');
      const patterns =
        patternArg.t === 'list'
          ? patternArg.v.map((_, i) => stringArg(patternArg.v, i, 'pattern'))
          : [stringArg(args, 1, 'pattern')];
      if (args[2]) {
        if (lsub || textOf(args[2])?.toUpperCase() !== 'RETURN' || args[3]?.t !== 'list')
          throw new ParseError('invalid LIST options');
        const opts = args[3].v;
        for (let i = 0; i < opts.length; i++) {
          const o = (textOf(opts[i]) ?? '').toUpperCase();
          if (o === 'STATUS') {
            const items = opts[i + 1];
            if (!items || items.t !== 'list') throw new ParseError('STATUS needs a list');
            statusWanted = statusItems(items.v);
            i++;
          } else if (RETURNS.has(o)) returns.add(o);
          else throw new ParseError(`unknown LIST return option ${o.slice(0, 30)}`);
        }
      }
      if (selection.has('SUBSCRIBED')) returns.add('SUBSCRIBED');
      const all = ctx.store.mailboxes();
      const verb = lsub ? 'LSUB' : 'LIST';
      if (patterns.length === 1 && patterns[0] === '' && !selection.size) {
        ctx.untagged(`${verb} (\\Noselect) "/" ""`);
        return ok(`${verb} completed`);
      }
      const names = new Set<string>();
      for (const p of patterns) {
        const full = decode(ctx, reference + p);
        for (const m of all) if (matches(m.name, full)) names.add(m.name);
      }
      const selected = (m: MailboxInfo): boolean =>
        !((lsub || selection.has('SUBSCRIBED')) && !m.subscribed) &&
        !(selection.has('SPECIAL-USE') && !m.specialUse);
      const criteria = ['SUBSCRIBED', 'SPECIAL-USE'].filter((c) => selection.has(c));
      for (const m of all) {
        if (!names.has(m.name)) continue;
        // RECURSIVEMATCH (RFC 5258 3.5): also name a mailbox whose descendant meets the criteria,
        // and say so with CHILDINFO.
        const childMatch =
          selection.has('RECURSIVEMATCH') && all.some((d) => d.name.startsWith(m.name + '/') && selected(d));
        if (!selected(m) && !childMatch) continue;
        const extra = childMatch ? ` ("CHILDINFO" (${criteria.map((c) => `"${c}"`).join(' ')}))` : '';
        ctx.untagged(
          `${verb} (${attributes(m, all, !lsub && returns.has('SUBSCRIBED')).join(' ')}) "/" ${mailboxOut(ctx, m.name)}${extra}`,
        );
        if (statusWanted) {
          const line = statusLine(ctx, m.name, statusWanted);
          if (line) ctx.untagged(line);
        }
        await ctx.drain();
      }
      return ok(`${verb} completed`);
    },
  };
}

function decode(ctx: CommandContext, name: string): string {
  return ctx.enabled.has('UTF8=ACCEPT') ? name : decodeMailboxName(name);
}

function attributes(m: MailboxInfo, all: readonly MailboxInfo[], subscribed: boolean): string[] {
  const attrs: string[] = [];
  attrs.push(all.some((o) => o.name.startsWith(m.name + '/')) ? '\\HasChildren' : '\\HasNoChildren');
  if (m.specialUse) attrs.push(m.specialUse);
  // \Subscribed is LIST-EXTENDED's (RFC 5258); LSUB does not carry it.
  if (subscribed && m.subscribed) attrs.push('\\Subscribed');
  return attrs;
}

/** LIST with LIST-EXTENDED (RFC 5258), SPECIAL-USE (RFC 6154) and LIST-STATUS (RFC 5819). */
export const list = listCommand(false);
/** LSUB (RFC 3501 6.3.9). */
export const lsub = listCommand(true);

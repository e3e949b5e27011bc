import { AUTHED, ok, type CommandContext, type CommandSpec } from '../context.ts';
import { ParseError, textOf, type Value } from '../values.ts';
import { mailboxArg, mailboxOut, noMore } from './args.ts';

const ITEMS = new Set([
  'MESSAGES',
  'RECENT',
  'UIDNEXT',
  'UIDVALIDITY',
  'UNSEEN',
  'HIGHESTMODSEQ',
  'SIZE',
  'DELETED',
]);

/** Validates a STATUS item list. */
export function statusItems(values: readonly Value[]): string[] {
  return values.map((v) => {
    const item = (textOf(v) ?? '').toUpperCase();
    if (!ITEMS.has(item)) throw new ParseError(`unknown STATUS item ${item.slice(0, 30)}`);
    return item;
  });
}

/** The untagged STATUS response for a mailbox. */
export function statusLine(ctx: CommandContext, name: string, items: readonly string[]): string {
  const s = ctx.store.status(name);
  const values: Record<string, number> = {
    MESSAGES: s.messages,
    RECENT: 0,
    UIDNEXT: s.uidNext,
    UIDVALIDITY: s.uidValidity,
    UNSEEN: s.unseen,
    HIGHESTMODSEQ: s.highestModseq,
    SIZE: s.size,
    DELETED: s.deleted,
  };
  return `STATUS ${mailboxOut(ctx, s.name)} (${items.map((i) => `${i} ${values[i]}`).join(' ')})`;
}

/** STATUS (RFC 3501 6.3.10). */
export const status: CommandSpec = {
  states: AUTHED,
  async run(ctx, cmd) {
    const name = mailboxArg(ctx, cmd.args, 0);
    const list = cmd.args[1];
    if (!list || list.t !== 'list') throw new ParseError('STATUS needs an item list');
    noMore(cmd.args, 2);
    ctx.untagged(statusLine(ctx, name, statusItems(list.v)));
    return ok('STATUS completed');
  },
};

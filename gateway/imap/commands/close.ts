import { SELECTED, ok, type CommandSpec } from '../context.ts';
import { noMore } from './args.ts';

/** CLOSE (RFC 3501 6.4.2): silently expunges, unless EXAMINEd. */
export const close: CommandSpec = {
  states: SELECTED,
  async run(ctx, cmd) {
    noMore(cmd.args, 0);
    const sel = ctx.selected!;
    if (!sel.readOnly) ctx.store.expunge(sel.mailbox.id, undefined, ctx.origin);
    ctx.select(null);
    return ok('CLOSE completed');
  },
};

/** UNSELECT (RFC 3691). */
export const unselect: CommandSpec = {
  states: SELECTED,
  async run(ctx, cmd) {
    noMore(cmd.args, 0);
    ctx.select(null);
    return ok('UNSELECT completed');
  },
};

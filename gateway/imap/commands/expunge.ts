import { KithError } from '../../../common/errors.ts';
import { SELECTED, ok, type CommandSpec } from '../context.ts';
import { parseSequenceSet } from '../sequence.ts';
import { noMore, stringArg } from './args.ts';

function expungeCommand(byUid: boolean): CommandSpec {
  return {
    states: SELECTED,
    async run(ctx, cmd) {
      const sel = ctx.selected!;
      let uids: number[] | undefined;
      if (byUid) {
        uids = sel.resolve(parseSequenceSet(stringArg(cmd.args, 0, 'UID set')), true).map(([, u]) => u);
        noMore(cmd.args, 1);
      } else noMore(cmd.args, 0);
      if (sel.readOnly)
        throw new KithError('ERR_IMAP_READONLY', 'mailbox is read-only', 'SELECT it instead of EXAMINE');
      // The store announces the expunges; the connection writes them before the tagged OK.
      ctx.store.expunge(sel.mailbox.id, uids, ctx.origin);
      return ok('EXPUNGE completed');
    },
  };
}

/** EXPUNGE (RFC 3501 6.4.3). */
export const expunge = expungeCommand(false);
/** UID EXPUNGE (RFC 4315). */
export const uidExpunge = expungeCommand(true);

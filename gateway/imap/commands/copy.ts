import { KithError } from '../../../common/errors.ts';
import { SELECTED, ok, no, type CommandSpec } from '../context.ts';
import { compressSet, parseSequenceSet } from '../sequence.ts';
import { mailboxArg, noMore, stringArg } from './args.ts';

function transferCommand(byUid: boolean, move: boolean): CommandSpec {
  return {
    states: SELECTED,
    async run(ctx, cmd) {
      const sel = ctx.selected!;
      const set = parseSequenceSet(stringArg(cmd.args, 0, 'sequence set'));
      const dest = mailboxArg(ctx, cmd.args, 1);
      noMore(cmd.args, 2);
      if (move && sel.readOnly)
        throw new KithError('ERR_IMAP_READONLY', 'mailbox is read-only', 'SELECT it instead of EXAMINE');
      const uids = sel.resolve(set, byUid).map(([, u]) => u);
      const target = ctx.store.mailbox(dest);
      // COPY into the same mailbox duplicates (RFC 3501 allows it); MOVE there would be a copy
      // that keeps the original, so it is refused.
      if (move && target.id === sel.mailbox.id)
        throw new KithError(
          'ERR_SAME_MAILBOX',
          'the messages are already in this mailbox',
          'choose another mailbox',
        );
      if (uids.length === 0) return byUid ? ok('nothing to do') : no('no such messages');
      const res = move
        ? ctx.store.move(sel.mailbox.id, uids, dest, ctx.origin)
        : ctx.store.copy(sel.mailbox.id, uids, dest, ctx.origin);
      if (res.pairs.length === 0) return ok('nothing to do');
      const code = `COPYUID ${res.uidValidity} ${compressSet(res.pairs.map((p) => p[0]))} ${compressSet(res.pairs.map((p) => p[1]))}`;
      if (move) {
        // RFC 6851: COPYUID comes untagged, before the EXPUNGEs the connection writes next.
        ctx.untagged(`OK [${code}] moved`);
        return ok('MOVE completed');
      }
      return ok('COPY completed', code);
    },
  };
}

/** COPY (RFC 3501 6.4.7, COPYUID from RFC 4315). */
export const copy = transferCommand(false, false);
/** UID COPY. */
export const uidCopy = transferCommand(true, false);
/** MOVE (RFC 6851). */
export const move = transferCommand(false, true);
/** UID MOVE. */
export const uidMove = transferCommand(true, true);

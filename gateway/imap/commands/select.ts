import { AUTHED, ok, type CommandSpec } from '../context.ts';
import { SelectedMailbox } from '../session.ts';
import { formatFlags } from '../format.ts';
import { mailboxArg } from './args.ts';
import { textOf, ParseError } from '../values.ts';

const FLAGS = [
  '\\Answered',
  '\\Flagged',
  '\\Deleted',
  '\\Seen',
  '\\Draft',
  '$Forwarded',
  '$Junk',
  '$NotJunk',
  '$MDNSent',
];

function selectCommand(readOnly: boolean): CommandSpec {
  return {
    states: AUTHED,
    async run(ctx, cmd) {
      const name = mailboxArg(ctx, cmd.args, 0);
      const params = cmd.args[1];
      if (params) {
        if (params.t !== 'list') throw new ParseError('invalid SELECT parameters');
        for (const p of params.v) {
          const n = (textOf(p) ?? '').toUpperCase();
          if (n === 'CONDSTORE') ctx.enabled.add('CONDSTORE');
          else throw new ParseError(`unsupported SELECT parameter ${n.slice(0, 30)}`);
        }
      }
      // A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
      ctx.select(null);
      const box = ctx.store.mailbox(name);
      const entries = ctx.store.entries(box.id);
      const fresh = ctx.store.mailboxInfo(box.id);
      const sel = new SelectedMailbox(fresh, readOnly, entries, ctx.origin);
      const keywords = new Set(FLAGS);
      for (const e of entries) for (const f of e.flags) if (!f.startsWith('\\')) keywords.add(f);
      const flags = [...keywords].slice(0, 500);
      let unseen = 0;
      for (let i = 0; i < entries.length; i++) {
        if (!entries[i]!.flags.includes('\\Seen')) {
          unseen = i + 1;
          break;
        }
      }
      ctx.untagged(`${entries.length} EXISTS`);
      ctx.untagged('0 RECENT');
      ctx.untagged(`FLAGS ${formatFlags(flags)}`);
      ctx.untagged(`OK [PERMANENTFLAGS ${readOnly ? '()' : formatFlags([...flags, '\\*'])}] flags permitted`);
      if (unseen) ctx.untagged(`OK [UNSEEN ${unseen}] first unseen`);
      ctx.untagged(`OK [UIDVALIDITY ${fresh.uidValidity}] UIDs valid`);
      ctx.untagged(`OK [UIDNEXT ${fresh.uidNext}] predicted next UID`);
      ctx.untagged(`OK [HIGHESTMODSEQ ${fresh.highestModseq}] highest`);
      ctx.select(sel);
      return ok(`${readOnly ? 'EXAMINE' : 'SELECT'} completed`, readOnly ? 'READ-ONLY' : 'READ-WRITE');
    },
  };
}

/** SELECT (RFC 3501 6.3.1, CONDSTORE parameter). */
export const select = selectCommand(false);
/** EXAMINE (RFC 3501 6.3.2). */
export const examine = selectCommand(true);

import { AUTHED, ok, type CommandContext, type CommandSpec } from '../context.ts';
import { compressSet, parseSequenceSet, type SequenceSet } from '../sequence.ts';
import { SelectedMailbox } from '../session.ts';
import { formatFlags } from '../format.ts';
import { mailboxArg } from './args.ts';
import { textOf, ParseError, type Value } from '../values.ts';

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
      let resync: Resync | null = null;
      if (params) {
        if (params.t !== 'list') throw new ParseError('invalid SELECT parameters');
        for (let i = 0; i < params.v.length; i++) {
          const n = (textOf(params.v[i]) ?? '').toUpperCase();
          if (n === 'CONDSTORE') ctx.enabled.add('CONDSTORE');
          else if (n === 'QRESYNC') resync = parseResync(ctx, params.v[++i]);
          else throw new ParseError(`unsupported SELECT parameter ${n.slice(0, 30)}`);
        }
      }
      // With QRESYNC the client must hear where one mailbox's responses end (RFC 7162 3.2.11).
      if (ctx.selected && ctx.enabled.has('QRESYNC')) ctx.untagged('OK [CLOSED] previous mailbox closed');
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
      if (resync && resync.uidValidity === fresh.uidValidity) {
        // What changed since the client's last sync: expunged UIDs, then changed flags.
        const known = resync.knownUids;
        const gone = ctx.store
          .vanished(box.id, resync.modseq)
          .filter((u) => !known || known.some(([a, b]) => u >= a && u <= b));
        if (gone.length) ctx.untagged(`VANISHED (EARLIER) ${compressSet(gone)}`);
        for (let i = 0; i < entries.length; i++) {
          const e = entries[i]!;
          if (e.modseq <= resync.modseq) continue;
          if (known && !known.some(([a, b]) => e.uid >= a && e.uid <= b)) continue;
          ctx.untagged(`${i + 1} FETCH (UID ${e.uid} FLAGS ${formatFlags(e.flags)} MODSEQ (${e.modseq}))`);
        }
      }
      ctx.select(sel);
      return ok(`${readOnly ? 'EXAMINE' : 'SELECT'} completed`, readOnly ? 'READ-ONLY' : 'READ-WRITE');
    },
  };
}

/** The QRESYNC parameter of SELECT/EXAMINE: (uidvalidity modseq [known-uids [seq-match]]). */
interface Resync {
  uidValidity: number;
  modseq: number;
  knownUids: SequenceSet | null;
}

function parseResync(ctx: CommandContext, v: Value | undefined): Resync {
  if (!ctx.enabled.has('QRESYNC')) throw new ParseError('QRESYNC needs ENABLE QRESYNC first');
  if (!v || v.t !== 'list' || v.v.length < 2 || v.v.length > 4)
    throw new ParseError('invalid QRESYNC parameter');
  const num = (x: Value | undefined): number => {
    const s = textOf(x) ?? '';
    if (!/^\d{1,19}$/.test(s)) throw new ParseError('invalid QRESYNC parameter');
    return Number(s);
  };
  const known = v.v[2];
  // known-uids is a sequence set; a list in its place would be sequence-match data without it.
  if (known && known.t === 'list') throw new ParseError('invalid QRESYNC known UIDs');
  // The sequence-match data (v.v[3]) only saves the server work; it is not needed to be right.
  return {
    uidValidity: num(v.v[0]),
    modseq: num(v.v[1]),
    knownUids: known ? parseSequenceSet(textOf(known) ?? '') : null,
  };
}

/** SELECT (RFC 3501 6.3.1, CONDSTORE and QRESYNC parameters). */
export const select = selectCommand(false);
/** EXAMINE (RFC 3501 6.3.2). */
export const examine = selectCommand(true);

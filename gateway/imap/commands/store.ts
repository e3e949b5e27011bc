import { KithError } from '../../../common/errors.ts';
import { SELECTED, ok, type CommandSpec } from '../context.ts';
import { formatFlags } from '../format.ts';
import { compressSet, parseSequenceSet } from '../sequence.ts';
import { ParseError, textOf } from '../values.ts';
import { flagList, stringArg } from './args.ts';

function storeCommand(byUid: boolean): CommandSpec {
  return {
    states: SELECTED,
    noExpunge: !byUid,
    async run(ctx, cmd) {
      const sel = ctx.selected!;
      const set = parseSequenceSet(stringArg(cmd.args, 0, 'sequence set'));
      let i = 1;
      let unchangedSince: number | undefined;
      const mod = cmd.args[i];
      if (mod?.t === 'list') {
        const [k, v] = mod.v;
        if ((textOf(k) ?? '').toUpperCase() !== 'UNCHANGEDSINCE' || !/^\d{1,19}$/.test(textOf(v) ?? '')) {
          throw new ParseError('invalid STORE modifier');
        }
        unchangedSince = Number(textOf(v));
        ctx.enabled.add('CONDSTORE');
        i++;
      }
      const item = (textOf(cmd.args[i]) ?? '').toUpperCase();
      const m = /^([+-]?)FLAGS(\.SILENT)?$/.exec(item);
      if (!m) throw new ParseError('invalid STORE item');
      const flags = flagList(cmd.args[i + 1]).filter((f) => f !== '\\Recent');
      if (cmd.args.length > i + 2) {
        // Flags given without parentheses: "STORE 1 +FLAGS \Seen \Flagged".
        for (const extra of cmd.args.slice(i + 2)) flags.push(...flagList(extra));
      }
      if (sel.readOnly)
        throw new KithError('ERR_IMAP_READONLY', 'mailbox is read-only', 'SELECT it instead of EXAMINE');
      const mode = m[1] === '+' ? 'add' : m[1] === '-' ? 'remove' : 'set';
      const targets = sel.resolve(set, byUid);
      const res = ctx.store.setFlags(
        sel.mailbox.id,
        targets.map(([, u]) => u),
        mode,
        flags,
        { unchangedSince, origin: ctx.origin },
      );
      const updated = new Map(res.updated.map((u) => [u.uid, u]));
      const failed = new Set(res.failed);
      const withModseq = ctx.enabled.has('CONDSTORE');
      for (const [seq, uid] of targets) {
        if (failed.has(uid)) continue;
        const u = updated.get(uid);
        if (u) {
          sel.flags.set(uid, u.flags);
          sel.modseqs.set(uid, u.modseq);
        }
        // Silent means no FLAGS echo, but CONDSTORE still reports the new MODSEQ (RFC 7162 3.1.3).
        if (m[2] && !(withModseq && u)) continue;
        const parts: string[] = [];
        if (byUid) parts.push(`UID ${uid}`);
        if (!m[2]) parts.push(`FLAGS ${formatFlags(sel.flags.get(uid) ?? [])}`);
        if (withModseq) parts.push(`MODSEQ (${sel.modseqs.get(uid) ?? 0})`);
        ctx.untagged(`${seq} FETCH (${parts.join(' ')})`);
      }
      if (res.failed.length) {
        const ids = byUid ? res.failed : res.failed.map((u) => sel.seqOf(u));
        return ok('conditional STORE failed for some messages', `MODIFIED ${compressSet(ids)}`);
      }
      return ok('STORE completed');
    },
  };
}

/** STORE (RFC 3501 6.4.6, UNCHANGEDSINCE from RFC 7162). */
export const store = storeCommand(false);
/** UID STORE. */
export const uidStore = storeCommand(true);

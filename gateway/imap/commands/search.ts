import { SELECTED, ok, type CommandSpec } from '../context.ts';
import { matches, parseSearch, requiredHeaderNeedles, searchNeeds } from '../search.ts';
import { compressSet } from '../sequence.ts';
import { ParseError, textOf, type Value } from '../values.ts';

const BATCH = 200;

function searchCommand(byUid: boolean): CommandSpec {
  return {
    states: SELECTED,
    noExpunge: !byUid,
    async run(ctx, cmd) {
      const sel = ctx.selected!;
      let args: readonly Value[] = cmd.args;
      let returns: string[] | null = null;
      if ((textOf(args[0]) ?? '').toUpperCase() === 'RETURN') {
        const list = args[1];
        if (!list || list.t !== 'list') throw new ParseError('RETURN needs a list');
        returns = list.v.map((v) => (textOf(v) ?? '').toUpperCase());
        if (returns.some((r) => !['MIN', 'MAX', 'ALL', 'COUNT'].includes(r)))
          throw new ParseError('unknown RETURN option');
        if (returns.length === 0) returns = ['ALL'];
        args = args.slice(2);
      }
      const { node, charsetGiven } = parseSearch(args);
      // RFC 6855 3: a client that enabled UTF8=ACCEPT sends UTF-8 and must not name a charset.
      if (charsetGiven && ctx.enabled.has('UTF8=ACCEPT'))
        throw new ParseError('no CHARSET after ENABLE UTF8=ACCEPT');
      const need = searchNeeds(node);
      const hits: [number, number, number][] = [];
      const n = sel.uids.length;
      const maxUid = n ? sel.uids[n - 1]! : 0;
      let candidates: Set<number> | null = null;
      for (const needle of requiredHeaderNeedles(node)) {
        const found = ctx.store.headerCandidates(sel.mailbox.id, needle);
        const previous: Set<number> | null = candidates;
        candidates = previous ? new Set([...previous].filter((u: number) => found.has(u))) : found;
      }
      for (let b = 0; b < n; b += BATCH) {
        let uids = sel.uids.slice(b, b + BATCH);
        if (candidates) {
          const keep = candidates;
          uids = uids.filter((u) => keep.has(u));
        }
        if (uids.length === 0) continue;
        const rows = need.meta
          ? new Map(
              ctx.store
                .messages(sel.mailbox.id, uids, {
                  raw: need.raw,
                  header: need.header && need.raw,
                  structure: need.raw,
                  searchHeader: need.header,
                })
                .map((r) => [r.uid, r]),
            )
          : null;
        for (let j = 0; j < uids.length; j++) {
          const uid = uids[j]!;
          const seq = candidates ? sel.seqOf(uid) : b + j + 1;
          const row = rows?.get(uid) ?? null;
          if (rows && !row) continue;
          let bytes: Buffer | null = null;
          if (row && need.raw) bytes = await ctx.store.readRaw(row);
          else if (row && need.header && row.searchHeader === null) bytes = await ctx.store.readHeader(row);
          const subject = {
            seq,
            uid,
            maxSeq: n,
            maxUid,
            flags: sel.flags.get(uid) ?? [],
            modseq: sel.modseqs.get(uid) ?? 0,
            row,
            bytes,
          };
          if (matches(node, subject)) hits.push([seq, uid, subject.modseq]);
        }
      }
      const ids = hits.map(([s, u]) => (byUid ? u : s));
      const usesModseq = JSON.stringify(node).includes('"modseq"');
      const highest = usesModseq && hits.length ? ` (MODSEQ ${Math.max(...hits.map((h) => h[2]))})` : '';
      if (returns) {
        const parts = [`(TAG "${cmd.tag}")`];
        if (byUid) parts.push('UID');
        if (returns.includes('MIN') && ids.length) parts.push(`MIN ${Math.min(...ids)}`);
        if (returns.includes('MAX') && ids.length) parts.push(`MAX ${Math.max(...ids)}`);
        if (returns.includes('COUNT')) parts.push(`COUNT ${ids.length}`);
        if (returns.includes('ALL') && ids.length) parts.push(`ALL ${compressSet(ids)}`);
        ctx.untagged(`ESEARCH ${parts.join(' ')}`);
      } else {
        ctx.untagged(`SEARCH${ids.length ? ' ' + ids.join(' ') : ''}${highest}`);
      }
      return ok('SEARCH completed');
    },
  };
}

/** SEARCH (RFC 3501 6.4.4, ESEARCH RETURN from RFC 4731, MODSEQ from RFC 7162). */
export const search = searchCommand(false);
/** UID SEARCH. */
export const uidSearch = searchCommand(true);

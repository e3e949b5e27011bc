import type { MimePart } from '../../mime/index.ts';
import type { MessageRow } from '../../mailbox/types.ts';
import { SELECTED, ok, type CommandContext, type CommandSpec } from '../context.ts';
import { parseFetchItems, parseFetchModifiers, type FetchItem } from '../fetch-items.ts';
import { formatFlags, formatInternalDate } from '../format.ts';
import { sectionBytes } from '../sections.ts';
import { compressSet, parseSequenceSet, type SequenceSet } from '../sequence.ts';
import { ParseError } from '../values.ts';
import { stringArg } from './args.ts';

// Rows are read from the store in batches, so a 1:* FETCH never holds the whole mailbox in memory.
const BATCH = 100;
const FLUSH_AT = 1 << 20;

function fetchCommand(byUid: boolean): CommandSpec {
  return {
    states: SELECTED,
    noExpunge: !byUid,
    async run(ctx, cmd) {
      const sel = ctx.selected!;
      const set = parseSequenceSet(stringArg(cmd.args, 0, 'sequence set'));
      const items = parseFetchItems(cmd.args[1]);
      const mods = parseFetchModifiers(cmd.args[2]);
      if (cmd.args.length > 3) return { status: 'BAD', text: 'too many arguments' };
      if (byUid && !items.some((i) => i.kind === 'simple' && i.name === 'UID'))
        items.unshift({ kind: 'simple', name: 'UID' });
      if (mods.changedSince !== undefined || items.some((i) => i.kind === 'simple' && i.name === 'MODSEQ')) {
        ctx.enabled.add('CONDSTORE');
        if (!items.some((i) => i.kind === 'simple' && i.name === 'MODSEQ'))
          items.push({ kind: 'simple', name: 'MODSEQ' });
      }
      if (mods.vanished) {
        // RFC 7162 3.2.6: only UID FETCH, only after ENABLE QRESYNC.
        if (!byUid || !ctx.enabled.has('QRESYNC'))
          throw new ParseError('VANISHED needs UID FETCH and QRESYNC');
        const gone = ctx.store.vanished(sel.mailbox.id, mods.changedSince!).filter((u) => inSet(set, u));
        if (gone.length) ctx.untagged(`VANISHED (EARLIER) ${compressSet(gone)}`);
      }
      let targets = sel.resolve(set, byUid);
      if (mods.changedSince !== undefined) {
        targets = targets.filter(([, uid]) => (sel.modseqs.get(uid) ?? 0) > mods.changedSince!);
      }
      const need = needs(items);
      const markSeen = !sel.readOnly && items.some((i) => i.kind === 'section' && i.setsSeen);
      for (let b = 0; b < targets.length; b += BATCH) {
        const batch = targets.slice(b, b + BATCH);
        const rows = ctx.store.messages(
          sel.mailbox.id,
          batch.map(([, u]) => u),
          need,
        );
        const byUidRow = new Map(rows.map((r) => [r.uid, r]));
        let flagsChanged = new Set<number>();
        if (markSeen) {
          const unseen = rows.filter((r) => !r.flags.includes('\\Seen')).map((r) => r.uid);
          if (unseen.length) {
            const res = ctx.store.setFlags(sel.mailbox.id, unseen, 'add', ['\\Seen'], { origin: ctx.origin });
            for (const u of res.updated) {
              const row = byUidRow.get(u.uid)!;
              row.flags = u.flags;
              row.modseq = u.modseq;
              sel.flags.set(u.uid, u.flags);
              sel.modseqs.set(u.uid, u.modseq);
            }
            flagsChanged = new Set(res.updated.map((u) => u.uid));
          }
        }
        // Small responses go out in one socket write per batch; once a megabyte is gathered it is
        // written and the client must read it before more is rendered (bounded output memory).
        let out: Buffer[] = [];
        let total = 0;
        const flush = async (): Promise<void> => {
          if (total > FLUSH_AT) for (const b of out) ctx.write(b);
          else if (total) ctx.write(Buffer.concat(out, total));
          out = [];
          total = 0;
          await ctx.drain();
        };
        for (const [seq, uid] of batch) {
          const row = byUidRow.get(uid);
          if (!row) continue; // expunged by another session, not yet announced
          for (const b of await render(ctx, seq, row, items, need, flagsChanged.has(uid))) {
            out.push(b);
            total += b.length;
          }
          if (total > FLUSH_AT) await flush();
        }
        await flush();
      }
      return ok('FETCH completed');
    },
  };
}

function needs(items: readonly FetchItem[]): {
  raw: boolean;
  header: boolean;
  envelope: boolean;
  structure: boolean;
} {
  const n = { raw: false, header: false, envelope: false, structure: false };
  for (const i of items) {
    if (i.kind === 'simple') {
      if (i.name === 'ENVELOPE') n.envelope = true;
      if (i.name === 'BODY' || i.name === 'BODYSTRUCTURE') n.structure = true;
    } else if (i.path.length === 0 && (i.text === 'HEADER' || i.text.startsWith('HEADER.FIELDS'))) {
      n.header = true;
    } else {
      n.raw = true;
      if (i.path.length) n.structure = true;
    }
  }
  return n;
}

async function render(
  ctx: CommandContext,
  seq: number,
  row: MessageRow,
  items: readonly FetchItem[],
  need: ReturnType<typeof needs>,
  flagsChanged: boolean,
): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  let text = `* ${seq} FETCH (`;
  let first = true;
  const sep = (): string => {
    const s = first ? '' : ' ';
    first = false;
    return s;
  };
  let raw: Buffer | null = null;
  let header: Buffer | null = null;
  let tree: MimePart | null = null;
  let flagsSent = false;
  for (const item of items) {
    if (item.kind === 'simple') {
      switch (item.name) {
        case 'UID':
          text += `${sep()}UID ${row.uid}`;
          break;
        case 'FLAGS':
          text += `${sep()}FLAGS ${formatFlags(row.flags)}`;
          flagsSent = true;
          break;
        case 'INTERNALDATE':
          text += `${sep()}INTERNALDATE ${formatInternalDate(row.internalDate)}`;
          break;
        case 'RFC822.SIZE':
          text += `${sep()}RFC822.SIZE ${row.size}`;
          break;
        case 'MODSEQ':
          text += `${sep()}MODSEQ (${row.modseq})`;
          break;
        case 'ENVELOPE':
          chunks.push(Buffer.from(`${text}${sep()}ENVELOPE `, 'latin1'), row.envelope!);
          text = '';
          break;
        case 'BODY':
          chunks.push(Buffer.from(`${text}${sep()}BODY `, 'latin1'), row.body!);
          text = '';
          break;
        case 'BODYSTRUCTURE':
          chunks.push(Buffer.from(`${text}${sep()}BODYSTRUCTURE `, 'latin1'), row.bodystructure!);
          text = '';
          break;
      }
      continue;
    }
    let source: Buffer;
    if (need.raw) {
      raw ??= await ctx.store.readRaw(row);
      source = raw;
    } else {
      header ??= await ctx.store.readHeader(row);
      source = header;
    }
    if (item.path.length && tree === null && row.tree) tree = JSON.parse(row.tree) as MimePart;
    let data = sectionBytes(source, tree, item, row.headerEnd);
    let name = item.responseName;
    if (item.partial) {
      const start = Math.min(item.partial.start, data.length);
      data = data.subarray(start, Math.min(data.length, start + item.partial.length));
    }
    text += `${sep()}${name} {${data.length}}\r\n`;
    chunks.push(Buffer.from(text, 'latin1'), data);
    text = '';
    name = '';
  }
  if (flagsChanged && !flagsSent) text += `${sep()}FLAGS ${formatFlags(row.flags)}`;
  text += ')\r\n';
  chunks.push(Buffer.from(text, 'latin1'));
  return chunks;
}

// Whether a UID is in a set; '*' reaches past every UID (expunged UIDs may be above the last).
function inSet(set: SequenceSet, uid: number): boolean {
  return set.some(([a, b]) => uid >= a && uid <= b);
}

/** FETCH (RFC 3501 6.4.5, CHANGEDSINCE from RFC 7162). */
export const fetch = fetchCommand(false);
/** UID FETCH. */
export const uidFetch = fetchCommand(true);

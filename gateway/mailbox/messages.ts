import { readFile } from 'node:fs/promises';
import type { Statement } from 'better-sqlite3';
import { KithError } from '../../common/errors.ts';
import type { Db } from '../../store/db.ts';
import type { BlobStore } from '../../store/blobs.ts';
import { decodeWords, type HeaderField } from '../mime/header.ts';
import { splitFlags } from './statements.ts';
import type { MailStore, MessageRow } from './types.ts';

// Messages read back for FETCH and SEARCH: rows with only the columns asked for, the body from
// its row or its blob file; and the header text SEARCH compares against, stored with each message.

// Batch size for IN (...) lists, below SQLite's variable limit.
const CHUNK = 500;

/** "key: decoded value" lines, lower-cased: what SEARCH compares header keys against. */
export function searchHeaderOf(fields: readonly HeaderField[]): string {
  return fields
    .map((f) => `${f.key}: ${decodeWords(f.value).replace(/[\r\n]+/g, ' ')}`)
    .join('\n')
    .toLowerCase();
}

/** Reads message rows of a mailbox by UID, in batches, keeping the statements FETCH uses again. */
export class MessageReader {
  private readonly statements = new Map<string, Statement>();

  constructor(private readonly db: Db) {}

  rows(mailboxId: number, uids: readonly number[], opts: Parameters<MailStore['messages']>[2]): MessageRow[] {
    const out: MessageRow[] = [];
    const cols = [
      'e.uid',
      'e.flags',
      'e.modseq',
      'm.id',
      'm.size',
      'm.internal_date',
      'm.header_end',
      'm.blob',
      opts.envelope ? 'm.envelope' : 'NULL AS envelope',
      opts.structure
        ? 'm.bodystructure, m.body, m.tree'
        : 'NULL AS bodystructure, NULL AS body, NULL AS tree',
      opts.raw
        ? 'm.raw'
        : opts.header
          ? `coalesce(m.header, substr(m.raw, 1, m.header_end)) AS raw`
          : 'NULL AS raw',
      opts.searchHeader ? 'm.search_header' : 'NULL AS search_header',
    ].join(', ');
    const sorted = [...uids].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; i += CHUNK) {
      const chunk = sorted.slice(i, i + CHUNK);
      const lo = chunk[0]!;
      const hi = chunk[chunk.length - 1]!;
      // A dense chunk (1:*, a SEARCH over everything) reads a range; a sparse one lists its UIDs.
      const dense = hi - lo + 1 <= chunk.length * 2;
      const sql = `SELECT ${cols} FROM mbx_entries e JOIN mbx_messages m ON m.id = e.message_id
         WHERE e.mailbox_id = ? AND ${dense ? 'e.uid BETWEEN ? AND ?' : `e.uid IN (${chunk.map(() => '?').join(',')})`} ORDER BY e.uid`;
      const want = dense ? new Set(chunk) : null;
      // Preparing costs more than a one-message query: keep the statements FETCH uses again.
      let stmt = this.statements.get(sql);
      if (!stmt) {
        if (this.statements.size > 200) this.statements.clear();
        stmt = this.db.prepare(sql);
        this.statements.set(sql, stmt);
      }
      const rows = (dense ? stmt.all(mailboxId, lo, hi) : stmt.all(mailboxId, ...chunk)) as Record<
        string,
        unknown
      >[];
      for (const r of rows) {
        if (want && !want.has(r.uid as number)) continue;
        out.push({
          uid: r.uid as number,
          flags: splitFlags(r.flags as string),
          modseq: r.modseq as number,
          messageId: r.id as number,
          size: r.size as number,
          internalDate: new Date(r.internal_date as number),
          headerEnd: r.header_end as number,
          blob: (r.blob as string | null) ?? null,
          inline: (r.raw as Buffer | null) ?? null,
          envelope: (r.envelope as Buffer | null) ?? null,
          bodystructure: (r.bodystructure as Buffer | null) ?? null,
          body: (r.body as Buffer | null) ?? null,
          tree: (r.tree as string | null) ?? null,
          searchHeader: (r.search_header as string | null) ?? null,
        });
      }
    }
    return out;
  }
}

/** A message's whole source: from the row read, its blob file, or its row again. */
export async function readRaw(db: Db, blobs: BlobStore, row: MessageRow): Promise<Buffer> {
  if (row.inline && row.inline.length === row.size) return row.inline;
  if (row.blob) return readFile(blobs.pathOf(row.blob));
  const r = db.prepare('SELECT raw FROM mbx_messages WHERE id = ?').get(row.messageId) as
    { raw: Buffer | null } | undefined;
  if (!r?.raw)
    throw new KithError('ERR_MESSAGE_GONE', 'the message body is missing', 'the message was expunged');
  return r.raw;
}

/** A message's header (up to the blank line). */
export async function readHeader(db: Db, blobs: BlobStore, row: MessageRow): Promise<Buffer> {
  if (row.inline && row.inline.length >= row.headerEnd) return row.inline.subarray(0, row.headerEnd);
  if (row.blob) return (await readFile(blobs.pathOf(row.blob))).subarray(0, row.headerEnd);
  return (await readRaw(db, blobs, row)).subarray(0, row.headerEnd);
}

import type { Db } from '../../store/db.ts';
import type { MailboxInfo } from './types.ts';

// The mailbox store's SQL (tables in schema.ts), prepared once the tables exist (start()), and
// the row shapes it reads back.

export type MailStatements = ReturnType<typeof prepareStatements>;

/** A row of mbx_mailboxes. */
export interface MailboxRow {
  id: number;
  name: string;
  special_use: string | null;
  uidvalidity: number;
  uidnext: number;
  highest_modseq: number;
  subscribed: number;
}

/** A mailbox row as the store hands it out. */
export function toInfo(r: MailboxRow): MailboxInfo {
  return {
    id: r.id,
    name: r.name,
    specialUse: r.special_use,
    uidValidity: r.uidvalidity,
    uidNext: r.uidnext,
    highestModseq: r.highest_modseq,
    subscribed: r.subscribed === 1,
  };
}

/** Flags as stored: space-separated. */
export const splitFlags = (s: string): string[] => (s === '' ? [] : s.split(' '));

/** The store's statements, prepared once (after start() migrated the tables). */
export function prepareStatements(db: Db) {
  return {
    mailboxByName: db.prepare('SELECT * FROM mbx_mailboxes WHERE name = ?'),
    mailboxById: db.prepare('SELECT * FROM mbx_mailboxes WHERE id = ?'),
    mailboxes: db.prepare('SELECT * FROM mbx_mailboxes ORDER BY name'),
    insertMailbox: db.prepare(
      'INSERT INTO mbx_mailboxes (name, special_use, uidvalidity, subscribed) VALUES (?, ?, ?, 1)',
    ),
    bumpUid: db.prepare(
      'UPDATE mbx_mailboxes SET uidnext = uidnext + 1, highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING uidnext - 1 AS uid, highest_modseq AS modseq',
    ),
    bumpModseq: db.prepare(
      'UPDATE mbx_mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq AS modseq',
    ),
    insertMessage: db.prepare(
      `INSERT INTO mbx_messages (size, internal_date, raw, blob, header_end, envelope, bodystructure, body, tree, kith_id, header, search_header)
       VALUES (@size, @internalDate, @raw, @blob, @headerEnd, @envelope, @bodystructure, @body, @tree, @kithId, @header, @searchHeader)`,
    ),
    insertEntry: db.prepare(
      'INSERT INTO mbx_entries (mailbox_id, uid, message_id, flags, modseq) VALUES (?, ?, ?, ?, ?)',
    ),
    entries: db.prepare('SELECT uid, flags, modseq FROM mbx_entries WHERE mailbox_id = ? ORDER BY uid'),
    entryRange: db.prepare(
      'SELECT uid, flags, modseq, message_id FROM mbx_entries WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid',
    ),
    updateFlags: db.prepare('UPDATE mbx_entries SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?'),
    deleteEntry: db.prepare('DELETE FROM mbx_entries WHERE mailbox_id = ? AND uid = ?'),
    insertVanished: db.prepare(
      'INSERT OR REPLACE INTO mbx_vanished (mailbox_id, uid, modseq) VALUES (?, ?, ?)',
    ),
    vanished: db.prepare('SELECT uid FROM mbx_vanished WHERE mailbox_id = ? AND modseq > ? ORDER BY uid'),
    orphan: db.prepare(
      'DELETE FROM mbx_messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM mbx_entries WHERE message_id = ?) RETURNING blob',
    ),
    blobUsers: db.prepare('SELECT 1 FROM mbx_messages WHERE blob = ? LIMIT 1'),
    activeComplaint: db.prepare(
      'SELECT * FROM mbx_complaints WHERE message_id = ? AND withdrawn IS NULL ORDER BY id DESC LIMIT 1',
    ),
    insertComplaint: db.prepare(
      'INSERT INTO mbx_complaints (message_id, kith_id, mailbox, uid, created) VALUES (?, ?, ?, ?, ?) RETURNING id',
    ),
    detachComplaints: db.prepare('UPDATE mbx_complaints SET message_id = 0 WHERE message_id = ?'),
    withdrawComplaint: db.prepare('UPDATE mbx_complaints SET withdrawn = ? WHERE id = ?'),
    kithIdOf: db.prepare('SELECT kith_id FROM mbx_messages WHERE id = ?'),
    holdsKith: db.prepare(
      'SELECT 1 FROM mbx_messages m WHERE m.kith_id = ? AND EXISTS (SELECT 1 FROM mbx_entries e WHERE e.message_id = m.id) LIMIT 1',
    ),
    junkCopy: db.prepare(
      `SELECT m.name, e.uid FROM mbx_entries e JOIN mbx_mailboxes m ON m.id = e.mailbox_id
       WHERE e.message_id = ? ORDER BY (m.special_use = '\\Junk') DESC, (instr(lower(e.flags), '$junk') > 0) DESC LIMIT 1`,
    ),
    complaints: db.prepare('SELECT * FROM mbx_complaints WHERE withdrawn IS NULL ORDER BY id'),
    meta: db.prepare('SELECT value FROM mbx_meta WHERE key = ?'),
    headerCandidates: db.prepare(
      `SELECT e.uid FROM mbx_entries e JOIN mbx_messages m ON m.id = e.message_id
       WHERE e.mailbox_id = ? AND (m.search_header IS NULL OR instr(m.search_header, ?) > 0)`,
    ),
    setMeta: db.prepare(
      'INSERT INTO mbx_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    ),
    status: db.prepare(
      `SELECT count(*) AS messages,
              sum(CASE WHEN instr(' ' || lower(e.flags) || ' ', ' \\seen ') = 0 THEN 1 ELSE 0 END) AS unseen,
              sum(CASE WHEN instr(' ' || lower(e.flags) || ' ', ' \\deleted ') > 0 THEN 1 ELSE 0 END) AS deleted,
              coalesce(sum(m.size), 0) AS size
       FROM mbx_entries e JOIN mbx_messages m ON m.id = e.message_id WHERE e.mailbox_id = ?`,
    ),
  };
}

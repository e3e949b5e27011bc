import type { Migration } from '../../store/db.ts';

/** The mailbox module's tables (owned by gateway/mailbox, migrated with store/db.ts migrate). */
export const MAILBOX_MIGRATIONS: readonly Migration[] = [
  `CREATE TABLE mbx_mailboxes (
     id INTEGER PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     special_use TEXT,
     uidvalidity INTEGER NOT NULL,
     uidnext INTEGER NOT NULL DEFAULT 1,
     highest_modseq INTEGER NOT NULL DEFAULT 1,
     subscribed INTEGER NOT NULL DEFAULT 1
   );
   CREATE TABLE mbx_messages (
     id INTEGER PRIMARY KEY,
     size INTEGER NOT NULL,
     internal_date INTEGER NOT NULL,
     raw BLOB,
     blob TEXT,
     header_end INTEGER NOT NULL,
     envelope BLOB NOT NULL,
     bodystructure BLOB NOT NULL,
     body BLOB NOT NULL,
     tree TEXT NOT NULL,
     kith_id TEXT
   );
   CREATE TABLE mbx_entries (
     mailbox_id INTEGER NOT NULL REFERENCES mbx_mailboxes(id) ON DELETE CASCADE,
     uid INTEGER NOT NULL,
     message_id INTEGER NOT NULL REFERENCES mbx_messages(id),
     flags TEXT NOT NULL DEFAULT '',
     modseq INTEGER NOT NULL,
     PRIMARY KEY (mailbox_id, uid)
   ) WITHOUT ROWID;
   CREATE INDEX mbx_entries_message ON mbx_entries(message_id);
   CREATE TABLE mbx_complaints (
     id INTEGER PRIMARY KEY,
     message_id INTEGER NOT NULL,
     kith_id TEXT,
     mailbox TEXT NOT NULL,
     uid INTEGER NOT NULL,
     created INTEGER NOT NULL,
     withdrawn INTEGER
   );
   CREATE INDEX mbx_complaints_message ON mbx_complaints(message_id);
   CREATE TABLE mbx_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);`,
  // The header block apart (FETCH of headers reads ~1 KB, not the whole message) and a decoded,
  // lower-cased copy for SEARCH; rows from version 1 have NULLs and fall back to the raw message.
  `ALTER TABLE mbx_messages ADD COLUMN header BLOB;
   ALTER TABLE mbx_messages ADD COLUMN search_header TEXT;`,
  // Expunged UIDs with the MODSEQ of their expunge, for QRESYNC's VANISHED (RFC 7162 3.2.5).
  `CREATE TABLE mbx_vanished (
     mailbox_id INTEGER NOT NULL REFERENCES mbx_mailboxes(id) ON DELETE CASCADE,
     uid INTEGER NOT NULL,
     modseq INTEGER NOT NULL,
     PRIMARY KEY (mailbox_id, uid)
   ) WITHOUT ROWID;
   CREATE INDEX mbx_vanished_modseq ON mbx_vanished(mailbox_id, modseq);`,
  // The Kith message id looked up by the gateway sink on every incoming message (exactly once
  // into the mailbox): an index instead of a scan of every mailbox's headers.
  `CREATE INDEX mbx_messages_kith_id ON mbx_messages(kith_id);`,
];

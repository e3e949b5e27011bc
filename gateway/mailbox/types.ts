import type { Rider } from '../../store/group-commit.ts';

/** A mailbox as the store knows it. */
export interface MailboxInfo {
  /** Internal row id (stable while the mailbox exists). */
  id: number;
  /** Full name, hierarchy delimiter '/', INBOX in upper case. */
  name: string;
  /** RFC 6154 attribute (\Sent, \Junk, ...) or null. */
  specialUse: string | null;
  /** UIDVALIDITY: never changes while the mailbox exists, never reused. */
  uidValidity: number;
  /** The UID the next message will get. */
  uidNext: number;
  /** Highest MODSEQ given out in this mailbox (only grows). */
  highestModseq: number;
  /** Whether the mailbox is subscribed (LSUB). */
  subscribed: boolean;
}

/** A message being stored, as MailStore.onArrival listeners see it (inside its transaction). */
export interface StagedArrival {
  mailboxId: number;
  uid: number;
  /** The bytes as stored (CRLF line ends): what readRaw() will return. */
  raw: Buffer;
  flags: string[];
  internalDate: Date;
}

/** STATUS counters of a mailbox. */
export interface MailboxStatus extends MailboxInfo {
  /** Number of messages. */
  messages: number;
  /** Messages without \Seen. */
  unseen: number;
  /** Messages with \Deleted. */
  deleted: number;
  /** Sum of message sizes in octets. */
  size: number;
}

/** Per-message state a session keeps in its snapshot. */
export interface EntryMeta {
  /** The message's UID in its mailbox. */
  uid: number;
  /** Flags and keywords. */
  flags: string[];
  /** MODSEQ of the last change. */
  modseq: number;
}

/** A message as FETCH needs it; columns not asked for are null. */
export interface MessageRow extends EntryMeta {
  /** Internal message row id (shared by copies). */
  messageId: number;
  /** RFC822.SIZE in octets (CRLF form). */
  size: number;
  /** INTERNALDATE. */
  internalDate: Date;
  /** Offset of the body: the header block is raw[0, headerEnd). */
  headerEnd: number;
  /** Blob hash when the body is kept as a file. */
  blob: string | null;
  /** The raw message (or its header only) when kept in the row. */
  inline: Buffer | null;
  /** Precomputed ENVELOPE (latin1 bytes). */
  envelope: Buffer | null;
  /** Precomputed BODYSTRUCTURE (latin1 bytes). */
  bodystructure: Buffer | null;
  /** Precomputed BODY (latin1 bytes). */
  body: Buffer | null;
  /** The MIME tree with offsets, JSON (gateway/mime MimePart). */
  tree: string | null;
  /** Decoded, lower-cased "key: value" header lines for SEARCH (null for old rows). */
  searchHeader: string | null;
}

/** A change other sessions must hear about (IDLE, untagged EXISTS/EXPUNGE/FETCH). */
export type MailChange =
  | {
      kind: 'exists';
      mailboxId: number;
      uid: number;
      flags: string[];
      modseq: number;
      origin?: unknown;
      /** For COPY and MOVE: the copy it came from (agent/sync keeps a moved message's identity). */
      source?: { mailboxId: number; uid: number; moved: boolean };
    }
  | { kind: 'flags'; mailboxId: number; uid: number; flags: string[]; modseq: number; origin?: unknown }
  | { kind: 'expunge'; mailboxId: number; uids: number[]; modseq: number; origin?: unknown }
  | { kind: 'mailbox-deleted'; mailboxId: number }
  | { kind: 'mailboxes' };

/** A message the user marked as spam (moved to Junk or flagged $Junk). */
export interface ComplaintCandidate {
  /** Row id of the complaint. */
  id: number;
  /** The Kith message id (from X-Kith-Message-Id), null for mail that did not come over Kith. */
  kithId: string | null;
  /** Mailbox and UID where the message was when the complaint was recorded. */
  mailbox: string;
  uid: number;
  /** When it was recorded. */
  at: Date;
}

/** A complaint recorded or withdrawn (moved back out of Junk, $Junk cleared). */
export interface ComplaintEvent {
  /** What happened ('seen': read and kept in a normal mailbox, no complaint: readAndKept). */
  kind: 'recorded' | 'withdrawn' | 'seen';
  /** The complaint concerned. */
  candidate: ComplaintCandidate;
}

/** Result of STORE. */
export interface StoreResult {
  /** Messages whose flags changed, with their new state. */
  updated: EntryMeta[];
  /** UIDs not changed because of UNCHANGEDSINCE. */
  failed: number[];
}

/** Result of COPY/MOVE: the destination's UIDVALIDITY and source→destination UID pairs. */
export interface CopyResult {
  /** UIDVALIDITY of the destination. */
  uidValidity: number;
  /** [source uid, destination uid] in source order. */
  pairs: [number, number][];
}

/** The durable mailbox store: the only thing that touches the mailbox tables. */
export interface MailStore {
  /** Migrates the tables and creates the special-use mailboxes. */
  start(): Promise<void>;
  /** Waits (bounded) for blob writes in flight, then refuses new work. */
  stop(timeoutMs?: number): Promise<void>;
  /**
   * Puts a message into a mailbox (default INBOX); durable (committed) when it resolves. `with`:
   * another module's write (the agent's delivered mark) taken into the same savepoint.
   */
  deliver(input: {
    mailbox?: string;
    raw: Buffer;
    flags?: string[];
    internalDate?: Date;
    with?: Rider;
  }): Promise<{
    mailbox: string;
    uid: number;
  }>;
  /** deliver() for IMAP APPEND: also returns UIDVALIDITY; `origin` marks the session that caused it. */
  append(input: {
    mailbox?: string;
    raw: Buffer;
    flags?: string[];
    internalDate?: Date;
    origin?: unknown;
  }): Promise<{
    mailbox: string;
    uid: number;
    uidValidity: number;
  }>;
  /** All mailboxes, sorted by name. */
  mailboxes(): MailboxInfo[];
  /** One mailbox by name (INBOX case-insensitive); throws ERR_NO_MAILBOX. */
  mailbox(name: string): MailboxInfo;
  /** A mailbox by id; throws ERR_NO_MAILBOX once deleted. */
  mailboxInfo(id: number): MailboxInfo;
  /** Creates a mailbox; ERR_MAILBOX_EXISTS, ERR_BAD_MAILBOX_NAME. */
  createMailbox(name: string): MailboxInfo;
  /** Deletes a mailbox and its messages; the standard mailboxes refuse (ERR_SPECIAL_MAILBOX). */
  deleteMailbox(name: string): void;
  /** Renames a mailbox and its children (INBOX: moves its messages instead). */
  renameMailbox(from: string, to: string): void;
  /** SUBSCRIBE / UNSUBSCRIBE. */
  setSubscribed(name: string, subscribed: boolean): void;
  /** STATUS counters. */
  status(name: string): MailboxStatus;
  /** UIDs, flags and MODSEQs of a mailbox in UID order (a session's snapshot). */
  entries(mailboxId: number): EntryMeta[];
  /** Rows for FETCH/SEARCH; only the asked-for columns are read. */
  messages(
    mailboxId: number,
    uids: readonly number[],
    opts: {
      raw?: boolean;
      header?: boolean;
      envelope?: boolean;
      structure?: boolean;
      searchHeader?: boolean;
    },
  ): MessageRow[];
  /** UIDs whose decoded header contains `needle` (lower case) somewhere: a SEARCH pre-filter. */
  headerCandidates(mailboxId: number, needle: string): Set<number>;
  /** True if a message with this Kith id (X-Kith-Message-Id) is in some mailbox; indexed. */
  holdsKithMessage(kithId: string): boolean;
  /** The whole raw message of a row. */
  readRaw(row: MessageRow): Promise<Buffer>;
  /** The header block of a row. */
  readHeader(row: MessageRow): Promise<Buffer>;
  /** STORE: changes flags; UNCHANGEDSINCE failures are reported, not applied. */
  setFlags(
    mailboxId: number,
    uids: readonly number[],
    mode: 'set' | 'add' | 'remove',
    flags: readonly string[],
    opts?: { unchangedSince?: number; origin?: unknown },
  ): StoreResult;
  /** COPY into another mailbox (by name). */
  copy(mailboxId: number, uids: readonly number[], dest: string, origin?: unknown): CopyResult;
  /** MOVE into another mailbox (by name): copy and expunge in one transaction; ERR_SAME_MAILBOX. */
  move(mailboxId: number, uids: readonly number[], dest: string, origin?: unknown): CopyResult;
  /** Removes \Deleted messages (only among `uids` if given); returns the removed UIDs. */
  expunge(mailboxId: number, uids?: readonly number[], origin?: unknown): number[];
  /** UIDs expunged from a mailbox with a MODSEQ above `sinceModseq`, ascending (QRESYNC). */
  vanished(mailboxId: number, sinceModseq: number): number[];
  /** Hears about every change; returns an unsubscribe function. */
  subscribe(listener: (change: MailChange) => void): () => void;
  /**
   * Hears about a message arriving (deliver(), or append() without an origin) inside the
   * transaction that stores it, to write rows of its own in it (agent/sync's change log: one
   * commit for both, bench/RESULTS.md 10.11). Each listener runs in a savepoint of its own: one
   * that throws is rolled back alone and the message is stored anyway. The function it returns
   * is told afterwards whether that transaction committed durably.
   */
  onArrival?(listener: (arrival: StagedArrival) => ((committed: boolean) => void) | void): () => void;
  /** Active (not withdrawn) complaint candidates, oldest first. */
  complaintCandidates(): ComplaintCandidate[];
  /** Hears about complaints recorded and withdrawn; returns an unsubscribe function. */
  onComplaint(listener: (event: ComplaintEvent) => void): () => void;
}

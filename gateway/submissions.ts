import type { Fingerprint, MessageId } from '../common/ids.ts';
import { migrate, type Db } from '../store/db.ts';
import { groupCommitOf, Rider } from '../store/group-commit.ts';

/**
 * The gateway's record of what it accepted over SMTP: the envelope, the DSN parameters and
 * the raw message blob, so that status emails can name the recipient as the client wrote it,
 * thread with the original and return it per RET. One row per submission, one per recipient
 * copy (each copy has its own Kith message id, the id delivery events carry).
 */

/** Delivery state of one recipient copy, as far as status emails are concerned. */
export type RecipientStatus = 'pending' | 'delayed' | 'delivered' | 'failed';

export interface SubmissionRecipient {
  /** Kith message id of this copy (OutboundMessage.id). */
  messageId: MessageId;
  /** The address as given in RCPT TO. */
  address: string;
  fingerprint: Fingerprint;
  /** RCPT NOTIFY values (RFC 3461), upper case; undefined when the client gave none. */
  notify?: string[];
  /** RCPT ORCPT as given: "addr-type;address" (xtext decoded). */
  orcpt?: string;
}

export interface NewSubmission {
  /** Submission id, named in the 250 reply. */
  id: string;
  /** The sender entity. */
  account: Fingerprint;
  /** MAIL FROM address; '' for the null sender. */
  mailFrom: string;
  /** The address in From: (status emails go to it when MAIL FROM is a different own address). */
  fromHeader: string;
  /** MAIL ENVID (RFC 3461). */
  envid?: string;
  /** MAIL RET: FULL or HDRS. */
  ret?: 'FULL' | 'HDRS';
  /** Blob hash and size of the raw message. */
  blob: string;
  size: number;
  /** Message-ID header of the original (with angle brackets), for In-Reply-To. */
  headerMessageId?: string;
  /** References header of the original, for the status email's References. */
  references?: string;
  /** Subject of the original, decoded. */
  subject?: string;
  receivedAt: Date;
  recipients: SubmissionRecipient[];
}

export type Submission = Omit<NewSubmission, 'recipients'> & {
  /** accepting: not yet answered 250; accepted: answered 250; abandoned: never answered 250. */
  state: 'accepting' | 'accepted' | 'abandoned';
};

export interface RecipientRecord extends SubmissionRecipient {
  status: RecipientStatus;
  /** True once a "delayed" status email went out for this copy (one per copy is enough). */
  delayReported: boolean;
}

const MIGRATIONS = [
  `CREATE TABLE gateway_submissions (
     id TEXT PRIMARY KEY,
     account TEXT NOT NULL,
     mail_from TEXT NOT NULL,
     from_header TEXT NOT NULL,
     envid TEXT,
     ret TEXT,
     blob TEXT NOT NULL,
     size INTEGER NOT NULL,
     header_message_id TEXT,
     refs TEXT,
     subject TEXT,
     received_at INTEGER NOT NULL,
     state TEXT NOT NULL
   );
   CREATE TABLE gateway_submission_recipients (
     message_id TEXT PRIMARY KEY,
     submission TEXT NOT NULL REFERENCES gateway_submissions(id) ON DELETE CASCADE,
     address TEXT NOT NULL,
     fingerprint TEXT NOT NULL,
     notify TEXT,
     orcpt TEXT,
     status TEXT NOT NULL DEFAULT 'pending',
     delay_reported INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX gateway_submission_recipients_by_submission ON gateway_submission_recipients(submission);`,
  // Whether the agent took this copy (submit() resolved). A submission answered 451 after some
  // of its copies were taken is abandoned, but those copies go out: a client's retry of the same
  // message adopts them instead of sending the recipients a second copy.
  `ALTER TABLE gateway_submission_recipients ADD COLUMN handed_over INTEGER NOT NULL DEFAULT 0;
   CREATE INDEX gateway_submissions_by_blob ON gateway_submissions(account, blob);`,
];

interface SubmissionRow {
  id: string;
  account: string;
  mail_from: string;
  from_header: string;
  envid: string | null;
  ret: string | null;
  blob: string;
  size: number;
  header_message_id: string | null;
  refs: string | null;
  subject: string | null;
  received_at: number;
  state: string;
}

interface RecipientRow {
  message_id: string;
  submission: string;
  address: string;
  fingerprint: string;
  notify: string | null;
  orcpt: string | null;
  status: string;
  delay_reported: number;
}

export interface SubmissionStore {
  /**
   * Runs synchronous writes on this store's database (these methods, and the agent's rows for
   * the copies) in the next group commit, shared with every other caller waiting at that moment;
   * resolves once they are durable (store/group-commit.ts).
   */
  commit<T>(write: () => T): Promise<T>;
  /** `write` as a Rider on this store's database (store/group-commit.ts), for another module's commit to take. */
  rider(write: () => void): Rider;
  /** Records a submission and its recipients in one committed transaction (state accepting). */
  record(submission: NewSubmission): void;
  /** Marks a submission as answered with 250. */
  markAccepted(id: string): void;
  /**
   * Marks a submission that will not be answered with 250 (the client retries or gives up). Never
   * throws: a write the disk refuses is kept in memory and written at the next handedOverCopies().
   */
  markAbandoned(id: string): void;
  /** The submission and the recipient copy a Kith message id belongs to. */
  findByMessage(messageId: MessageId): { submission: Submission; recipient: RecipientRecord } | undefined;
  /** All submissions, newest first (for tests and `kith` tooling). */
  list(limit?: number): Array<Submission & { recipients: RecipientRecord[] }>;
  /**
   * Moves a copy to a new status unless it already reached a final one (delivered, failed).
   * Returns whether it moved: a repeated or late event must not produce a second status email.
   */
  transition(messageId: MessageId, status: RecipientStatus): boolean;
  /** Remembers that the "delayed" status email for this copy went out. */
  markDelayReported(messageId: MessageId): void;
  /** Remembers that the agent took this copy (its submit() resolved); never throws, as markAbandoned. */
  markHandedOver(messageId: MessageId): void;
  /**
   * Copies of the same message (same account, same bytes) that the agent took for submissions
   * never answered 250: by recipient entity, the Kith message id of the copy already on its way.
   */
  handedOverCopies(account: Fingerprint, blob: string): Map<Fingerprint, MessageId>;
  /** At start-up: submissions still accepting were never answered 250; marks them abandoned. Returns how many. */
  abandonUnanswered(): number;
}

/** The gateway_submissions tables in the node's database. */
export function createSubmissionStore(db: Db): SubmissionStore {
  migrate(db, 'gateway_submissions', MIGRATIONS);
  const insertSubmission = db.prepare(
    `INSERT INTO gateway_submissions (id, account, mail_from, from_header, envid, ret, blob, size,
       header_message_id, refs, subject, received_at, state)
     VALUES (@id, @account, @mailFrom, @fromHeader, @envid, @ret, @blob, @size,
       @headerMessageId, @references, @subject, @receivedAt, 'accepting')`,
  );
  // A copy adopted from an abandoned submission moves to the new one, keeping its status.
  const insertRecipient = db.prepare(
    `INSERT INTO gateway_submission_recipients (message_id, submission, address, fingerprint, notify, orcpt)
     VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT(message_id) DO UPDATE SET submission = excluded.submission, address = excluded.address,
       notify = excluded.notify, orcpt = excluded.orcpt`,
  );
  const handedOver = db.prepare(
    'UPDATE gateway_submission_recipients SET handed_over = 1 WHERE message_id = ?',
  );
  const handedOverOf = db.prepare(
    `SELECT r.fingerprint, r.message_id, r.handed_over, s.id, s.state FROM gateway_submission_recipients r
     JOIN gateway_submissions s ON s.id = r.submission
     WHERE s.account = ? AND s.blob = ? AND s.state IN ('abandoned', 'accepting')
     ORDER BY r.rowid`,
  );
  // What a full disk (SQLITE_FULL) kept us from writing: kept here and written at the next chance,
  // so that a client's retry still adopts the copies the agent took (no second copy) and no caller
  // has to handle a bookkeeping failure after the agent took a message (test/faults/disk-full).
  const unsavedAbandoned = new Set<string>();
  const unsavedHandedOver = new Set<string>();
  const saveLater = (set: Set<string>, key: string, write: () => void) => {
    try {
      write();
      set.delete(key);
    } catch {
      set.add(key);
    }
  };
  const flushUnsaved = () => {
    for (const id of unsavedAbandoned) saveLater(unsavedAbandoned, id, () => setState.run('abandoned', id));
    for (const id of unsavedHandedOver) saveLater(unsavedHandedOver, id, () => handedOver.run(id));
  };
  const setState = db.prepare('UPDATE gateway_submissions SET state = ? WHERE id = ?');
  const recipientById = db.prepare('SELECT * FROM gateway_submission_recipients WHERE message_id = ?');
  const submissionById = db.prepare('SELECT * FROM gateway_submissions WHERE id = ?');
  const recipientsOf = db.prepare(
    'SELECT * FROM gateway_submission_recipients WHERE submission = ? ORDER BY rowid',
  );
  const move = db.prepare(
    `UPDATE gateway_submission_recipients SET status = ?
     WHERE message_id = ? AND status NOT IN ('delivered', 'failed') AND status <> ?`,
  );
  const delayReported = db.prepare(
    'UPDATE gateway_submission_recipients SET delay_reported = 1 WHERE message_id = ?',
  );

  const record = db.transaction((s: NewSubmission) => {
    insertSubmission.run({
      id: s.id,
      account: s.account,
      mailFrom: s.mailFrom,
      fromHeader: s.fromHeader,
      envid: s.envid ?? null,
      ret: s.ret ?? null,
      blob: s.blob,
      size: s.size,
      headerMessageId: s.headerMessageId ?? null,
      references: s.references ?? null,
      subject: s.subject ?? null,
      receivedAt: s.receivedAt.getTime(),
    });
    for (const r of s.recipients) {
      insertRecipient.run(
        r.messageId,
        s.id,
        r.address,
        r.fingerprint,
        r.notify?.join(',') ?? null,
        r.orcpt ?? null,
      );
    }
  });

  const group = groupCommitOf(db);
  return {
    commit: (write) => group.run(write),
    rider: (write) => new Rider(db, write),
    record: (s) => record(s),
    markAccepted: (id) => void setState.run('accepted', id),
    markAbandoned: (id) => saveLater(unsavedAbandoned, id, () => setState.run('abandoned', id)),
    findByMessage(messageId) {
      const r = recipientById.get(messageId) as RecipientRow | undefined;
      if (!r) return undefined;
      const s = submissionById.get(r.submission) as SubmissionRow;
      return { submission: toSubmission(s), recipient: toRecipient(r) };
    },
    list(limit = 100) {
      const rows = db
        .prepare('SELECT * FROM gateway_submissions ORDER BY received_at DESC, rowid DESC LIMIT ?')
        .all(limit) as SubmissionRow[];
      return rows.map((s) => ({
        ...toSubmission(s),
        recipients: (recipientsOf.all(s.id) as RecipientRow[]).map(toRecipient),
      }));
    },
    transition: (messageId, status) => move.run(status, messageId, status).changes === 1,
    markDelayReported: (messageId) => void delayReported.run(messageId),
    markHandedOver: (messageId) => saveLater(unsavedHandedOver, messageId, () => handedOver.run(messageId)),
    handedOverCopies(account, blob) {
      flushUnsaved();
      const rows = handedOverOf.all(account, blob) as Array<{
        fingerprint: string;
        message_id: string;
        handed_over: number;
        id: string;
        state: string;
      }>;
      const adoptable = rows.filter(
        (r) =>
          (r.state === 'abandoned' || unsavedAbandoned.has(r.id)) &&
          (r.handed_over === 1 || unsavedHandedOver.has(r.message_id)),
      );
      return new Map(adoptable.map((r) => [r.fingerprint as Fingerprint, r.message_id as MessageId]));
    },
    abandonUnanswered: () =>
      db.prepare("UPDATE gateway_submissions SET state = 'abandoned' WHERE state = 'accepting'").run()
        .changes,
  };
}

function toSubmission(s: SubmissionRow): Submission {
  return {
    id: s.id,
    account: s.account as Fingerprint,
    mailFrom: s.mail_from,
    fromHeader: s.from_header,
    envid: s.envid ?? undefined,
    ret: (s.ret as 'FULL' | 'HDRS' | null) ?? undefined,
    blob: s.blob,
    size: s.size,
    headerMessageId: s.header_message_id ?? undefined,
    references: s.refs ?? undefined,
    subject: s.subject ?? undefined,
    receivedAt: new Date(s.received_at),
    state: s.state as Submission['state'],
  };
}

function toRecipient(r: RecipientRow): RecipientRecord {
  return {
    messageId: r.message_id as MessageId,
    address: r.address,
    fingerprint: r.fingerprint as Fingerprint,
    notify: r.notify ? r.notify.split(',') : undefined,
    orcpt: r.orcpt ?? undefined,
    status: r.status as RecipientStatus,
    delayReported: r.delay_reported === 1,
  };
}

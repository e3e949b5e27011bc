import { KithError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { migrate, type Db } from '../../store/db.ts';
import { groupCommitOf, type Rider } from '../../store/group-commit.ts';
import type { BlobStore } from '../../store/blobs.ts';
import { analyzeMessage } from '../mime/index.ts';
import { headerValue, parseHeader } from '../mime/header.ts';
import {
  applyFlags,
  canonicalName,
  DELIMITER,
  invalidName,
  mailboxKind,
  SPECIAL_MAILBOXES,
  type ComplaintTrigger,
  toCrlf,
} from './decisions.ts';
import { MAILBOX_MIGRATIONS } from './schema.ts';
import { prepareStatements, splitFlags, toInfo, type MailboxRow, type MailStatements } from './statements.ts';
import { complaintCandidates, reviewComplaint } from './complaints.ts';
import { MessageReader, readHeader, readRaw, searchHeaderOf } from './messages.ts';
import type {
  ComplaintCandidate,
  ComplaintEvent,
  EntryMeta,
  MailboxInfo,
  MailboxStatus,
  MailChange,
  MailStore,
  StoreResult,
  CopyResult,
  StagedArrival,
} from './types.ts';

// Bodies up to this size live in the SQLite row (one read for FETCH); larger ones are blob files.
const INLINE_LIMIT = 256 * 1024;

/** Dependencies of the mailbox store. */
export interface MailStoreDeps {
  /** The node's database (store/db.ts openDatabase). */
  db: Db;
  /** Where large message bodies are kept. */
  blobs: BlobStore;
  log: Logger;
}

function noMailbox(name: string): KithError {
  return new KithError('ERR_NO_MAILBOX', `no mailbox named ${name}`, 'create it first');
}

/** Creates the durable mailbox store (SQLite rows + blob files) used by IMAP, SMTP status mail and the agent. */
export function createMailStore(deps: MailStoreDeps): MailStore {
  const { db, blobs, log } = deps;
  const listeners = new Set<(c: MailChange) => void>();
  const complaintListeners = new Set<(c: ComplaintEvent) => void>();
  const arrivalListeners = new Set<(a: StagedArrival) => ((committed: boolean) => void) | void>();
  const inFlight = new Set<Promise<unknown>>();
  let started = false;
  let stopping = false;
  // Statements are prepared lazily: the tables exist only after start() migrated them.
  let q!: MailStatements;
  const reader = new MessageReader(db);

  function emit(change: MailChange): void {
    for (const l of listeners) {
      try {
        l(change);
      } catch (err) {
        log.error({ err }, 'mailbox change listener failed');
      }
    }
  }

  function emitComplaint(ev: ComplaintEvent): void {
    for (const l of complaintListeners) {
      try {
        l(ev);
      } catch (err) {
        log.error({ err }, 'complaint listener failed');
      }
    }
  }

  function requireStarted(): void {
    if (!started)
      throw new KithError('ERR_MAILSTORE_STOPPED', 'the mailbox store is not running', 'start it first');
  }

  function getMailbox(name: string): MailboxInfo {
    requireStarted();
    const row = q.mailboxByName.get(canonicalName(name)) as MailboxRow | undefined;
    if (!row) throw noMailbox(name);
    return toInfo(row);
  }

  function mailboxById(id: number): MailboxInfo {
    const row = q.mailboxById.get(id) as MailboxRow | undefined;
    if (!row) throw new KithError('ERR_NO_MAILBOX', 'the mailbox was deleted', 'select another mailbox');
    return toInfo(row);
  }

  function nextUidValidity(): number {
    // Never reuse a UIDVALIDITY, even for a mailbox re-created under an old name.
    const last = ((q.meta.get('uidvalidity') as { value: number } | undefined)?.value ?? 0) as number;
    const next = Math.max(last + 1, Math.floor(Date.now() / 1000));
    q.setMeta.run('uidvalidity', next);
    return next;
  }

  function createMailboxRow(name: string, specialUse: string | null): MailboxInfo {
    const id = Number(q.insertMailbox.run(name, specialUse, nextUidValidity()).lastInsertRowid);
    return mailboxById(id);
  }

  function removeOrphan(messageId: number, blobsToCheck: string[]): void {
    const gone = q.orphan.get(messageId, messageId) as { blob: string | null } | undefined;
    if (!gone) return;
    // SQLite reuses the rowid of the newest message once it is deleted: a complaint must not
    // pass to the next message delivered (0 is never a rowid).
    q.detachComplaints.run(messageId);
    if (gone.blob) blobsToCheck.push(gone.blob);
  }

  function collectBlobs(hashes: string[]): void {
    for (const hash of hashes) {
      if (q.blobUsers.get(hash)) continue;
      track(blobs.remove(hash).catch((err: unknown) => log.warn({ err, hash }, 'could not remove a blob')));
    }
  }

  function track<T>(p: Promise<T>): Promise<T> {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  function entriesIn(
    mailboxId: number,
    uids: readonly number[],
  ): { uid: number; flags: string; modseq: number; message_id: number }[] {
    if (uids.length === 0) return [];
    const sorted = [...uids].sort((a, b) => a - b);
    const want = new Set(sorted);
    const rows = q.entryRange.all(mailboxId, sorted[0], sorted[sorted.length - 1]) as {
      uid: number;
      flags: string;
      modseq: number;
      message_id: number;
    }[];
    return rows.filter((r) => want.has(r.uid));
  }

  async function append(input: {
    mailbox?: string;
    raw: Buffer;
    flags?: string[];
    internalDate?: Date;
    origin?: unknown;
    with?: Rider;
  }): Promise<{ mailbox: string; uid: number; uidValidity: number }> {
    requireStarted();
    if (stopping)
      throw new KithError('ERR_MAILSTORE_STOPPED', 'the mailbox store is stopping', 'retry after restart');
    const box = getMailbox(input.mailbox ?? 'INBOX');
    const raw = toCrlf(input.raw);
    const analysis = analyzeMessage(raw);
    let blob: string | null = null;
    if (raw.length > INLINE_LIMIT) blob = (await track(blobs.put(raw))).hash;
    const headerEnd = analysis.tree.bodyStart;
    const fields = parseHeader(raw.toString('latin1', 0, headerEnd));
    const kithId = headerValue(fields, 'x-kith-message-id')?.trim() ?? null;
    const flags = applyFlags([], 'set', input.flags ?? []);
    const internalDate = (input.internalDate ?? new Date()).getTime();
    const pending: ComplaintEvent[] = [];
    const afterCommit: Array<(committed: boolean) => void> = [];
    // In the connection's group commit: arrivals of the same moment (and the agent's own writes
    // then) share one fsync; the message shows (EXISTS) only once its commit returned.
    const rider = input.with?.take(db);
    const run = groupCommitOf(db).run(() => {
      rider?.();
      const current = mailboxById(box.id);
      const messageId = Number(
        q.insertMessage.run({
          size: raw.length,
          internalDate,
          raw: blob ? null : raw,
          blob,
          headerEnd,
          envelope: Buffer.from(analysis.envelope, 'latin1'),
          bodystructure: Buffer.from(analysis.bodystructure, 'latin1'),
          body: Buffer.from(analysis.body, 'latin1'),
          tree: JSON.stringify(analysis.tree),
          kithId,
          header: raw.subarray(0, headerEnd),
          searchHeader: searchHeaderOf(fields),
        }).lastInsertRowid,
      );
      const { uid, modseq } = q.bumpUid.get(current.id) as { uid: number; modseq: number };
      q.insertEntry.run(current.id, uid, messageId, flags.join(' '), modseq);
      reviewComplaint(
        q,
        messageId,
        { kind: 'arrived', into: mailboxKind(current.specialUse), flags },
        pending,
      );
      // Last, so nothing of the message's own can fail after a listener wrote its rows.
      if (input.origin === undefined) {
        const arrival = { mailboxId: current.id, uid, raw, flags, internalDate: new Date(internalDate) };
        for (const listen of arrivalListeners) {
          try {
            const after = db.transaction(() => listen(arrival))();
            if (after) afterCommit.push(after);
          } catch (err) {
            log.warn(
              { err: (err as Error).message },
              'a mailbox arrival listener failed; its rows are rolled back',
            );
          }
        }
      }
      return { mailbox: current.name, uid, uidValidity: current.uidValidity, modseq, mailboxId: current.id };
    });
    const told = (committed: boolean) => {
      for (const after of afterCommit.splice(0)) {
        try {
          after(committed);
        } catch (err) {
          log.error({ err }, 'a mailbox arrival listener failed after the commit');
        }
      }
    };
    const result = await run.then(
      (r) => {
        told(true);
        return r;
      },
      (err: unknown) => {
        told(false);
        throw err;
      },
    );
    emit({
      kind: 'exists',
      mailboxId: result.mailboxId,
      uid: result.uid,
      flags,
      modseq: result.modseq,
      origin: input.origin,
    });
    pending.forEach(emitComplaint);
    return { mailbox: result.mailbox, uid: result.uid, uidValidity: result.uidValidity };
  }

  function transfer(
    mailboxId: number,
    uids: readonly number[],
    dest: string,
    removeSource: boolean,
    origin: unknown,
  ): CopyResult {
    requireStarted();
    const target = getMailbox(dest);
    const pending: ComplaintEvent[] = [];
    const created: { uid: number; flags: string[]; modseq: number; from: number }[] = [];
    const expunged: number[] = [];
    let expungeModseq = 0;
    const pairs = db.transaction(() => {
      const out: [number, number][] = [];
      const rows = entriesIn(mailboxId, uids);
      for (const r of rows) {
        const { uid, modseq } = q.bumpUid.get(target.id) as { uid: number; modseq: number };
        q.insertEntry.run(target.id, uid, r.message_id, r.flags, modseq);
        created.push({ uid, flags: splitFlags(r.flags), modseq, from: r.uid });
        out.push([r.uid, uid]);
      }
      if (removeSource) {
        for (const r of rows) {
          q.deleteEntry.run(mailboxId, r.uid);
          expunged.push(r.uid);
        }
        if (rows.length) expungeModseq = (q.bumpModseq.get(mailboxId) as { modseq: number }).modseq;
        for (const uid of expunged) q.insertVanished.run(mailboxId, uid, expungeModseq);
      }
      const into = mailboxKind(target.specialUse);
      for (const r of rows)
        reviewComplaint(q, r.message_id, { kind: 'arrived', into, flags: splitFlags(r.flags) }, pending);
      return out;
    })();
    for (const { from, ...c } of created) {
      const source = { mailboxId, uid: from, moved: removeSource };
      emit({ kind: 'exists', mailboxId: target.id, ...c, origin, source });
    }
    if (expunged.length) emit({ kind: 'expunge', mailboxId, uids: expunged, modseq: expungeModseq, origin });
    pending.forEach(emitComplaint);
    return { uidValidity: target.uidValidity, pairs };
  }

  const store: MailStore = {
    async start() {
      if (started) return;
      migrate(db, 'mailbox', MAILBOX_MIGRATIONS);
      q = prepareStatements(db);
      db.transaction(() => {
        for (const m of SPECIAL_MAILBOXES) {
          if (!q.mailboxByName.get(m.name)) createMailboxRow(m.name, m.use);
        }
      })();
      started = true;
      stopping = false;
    },

    async stop(timeoutMs = 5000) {
      stopping = true;
      const all = Promise.allSettled([...inFlight]);
      await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
      started = false;
      listeners.clear();
      complaintListeners.clear();
    },

    deliver(input) {
      return append(input).then(({ mailbox, uid }) => ({ mailbox, uid }));
    },

    append,

    mailboxes() {
      requireStarted();
      return (q.mailboxes.all() as MailboxRow[]).map(toInfo);
    },

    mailbox: getMailbox,

    createMailbox(name) {
      requireStarted();
      const canonical = canonicalName(name);
      const why = invalidName(canonical);
      if (why) throw new KithError('ERR_BAD_MAILBOX_NAME', why, 'choose another name');
      if (q.mailboxByName.get(canonical)) {
        throw new KithError(
          'ERR_MAILBOX_EXISTS',
          `mailbox ${canonical} already exists`,
          'choose another name',
        );
      }
      const info = db.transaction(() => createMailboxRow(canonical, null))();
      emit({ kind: 'mailboxes' });
      return info;
    },

    deleteMailbox(name) {
      const box = getMailbox(name);
      if (box.name === 'INBOX' || box.specialUse) {
        throw new KithError(
          'ERR_SPECIAL_MAILBOX',
          `${box.name} cannot be deleted`,
          'it is one of the standard mailboxes',
        );
      }
      const blobsToCheck: string[] = [];
      db.transaction(() => {
        const rows = q.entryRange.all(box.id, 0, Number.MAX_SAFE_INTEGER) as {
          uid: number;
          message_id: number;
        }[];
        db.prepare('DELETE FROM mbx_mailboxes WHERE id = ?').run(box.id);
        for (const r of rows) removeOrphan(r.message_id, blobsToCheck);
      })();
      collectBlobs(blobsToCheck);
      emit({ kind: 'mailbox-deleted', mailboxId: box.id });
      emit({ kind: 'mailboxes' });
    },

    renameMailbox(from, to) {
      const box = getMailbox(from);
      const target = canonicalName(to);
      const why = invalidName(target);
      if (why) throw new KithError('ERR_BAD_MAILBOX_NAME', why, 'choose another name');
      if (q.mailboxByName.get(target)) {
        throw new KithError('ERR_MAILBOX_EXISTS', `mailbox ${target} already exists`, 'choose another name');
      }
      if (box.specialUse) {
        throw new KithError(
          'ERR_SPECIAL_MAILBOX',
          `${box.name} cannot be renamed`,
          'it is one of the standard mailboxes',
        );
      }
      if (box.name === 'INBOX') {
        // RFC 3501: renaming INBOX moves its messages to the new mailbox and leaves INBOX empty.
        const created = store.createMailbox(target);
        const uids = (q.entries.all(box.id) as { uid: number }[]).map((e) => e.uid);
        transfer(box.id, uids, created.name, true, undefined);
        return;
      }
      db.transaction(() => {
        const children = (q.mailboxes.all() as MailboxRow[]).filter((m) =>
          m.name.startsWith(box.name + DELIMITER),
        );
        db.prepare('UPDATE mbx_mailboxes SET name = ? WHERE id = ?').run(target, box.id);
        for (const c of children) {
          db.prepare('UPDATE mbx_mailboxes SET name = ? WHERE id = ?').run(
            target + c.name.slice(box.name.length),
            c.id,
          );
        }
      })();
      emit({ kind: 'mailboxes' });
    },

    setSubscribed(name, subscribed) {
      const box = getMailbox(name);
      db.prepare('UPDATE mbx_mailboxes SET subscribed = ? WHERE id = ?').run(subscribed ? 1 : 0, box.id);
    },

    status(name): MailboxStatus {
      const box = getMailbox(name);
      const s = q.status.get(box.id) as {
        messages: number;
        unseen: number | null;
        deleted: number | null;
        size: number;
      };
      return {
        ...box,
        messages: s.messages,
        unseen: s.unseen ?? 0,
        deleted: s.deleted ?? 0,
        size: s.size,
      };
    },

    mailboxInfo(id) {
      requireStarted();
      return mailboxById(id);
    },

    entries(mailboxId): EntryMeta[] {
      requireStarted();
      return (q.entries.all(mailboxId) as { uid: number; flags: string; modseq: number }[]).map((r) => ({
        uid: r.uid,
        flags: splitFlags(r.flags),
        modseq: r.modseq,
      }));
    },

    messages(mailboxId, uids, opts) {
      requireStarted();
      return reader.rows(mailboxId, uids, opts);
    },

    holdsKithMessage(kithId) {
      requireStarted();
      return q.holdsKith.get(kithId.trim()) !== undefined;
    },

    headerCandidates(mailboxId, needle) {
      requireStarted();
      // Rows from before the search_header column are always candidates.
      const rows = q.headerCandidates.all(mailboxId, needle) as { uid: number }[];
      return new Set(rows.map((r) => r.uid));
    },

    readRaw: (row) => readRaw(db, blobs, row),

    readHeader: (row) => readHeader(db, blobs, row),

    setFlags(mailboxId, uids, mode, flags, opts = {}): StoreResult {
      requireStarted();
      const pending: ComplaintEvent[] = [];
      const updated: EntryMeta[] = [];
      const failed: number[] = [];
      db.transaction(() => {
        let modseq = 0;
        const kind = mailboxKind(mailboxById(mailboxId).specialUse);
        for (const r of entriesIn(mailboxId, uids)) {
          if (opts.unchangedSince !== undefined && r.modseq > opts.unchangedSince) {
            failed.push(r.uid);
            continue;
          }
          const before = splitFlags(r.flags);
          const after = applyFlags(before, mode, flags);
          if (after.join(' ') === r.flags) continue;
          if (modseq === 0) modseq = (q.bumpModseq.get(mailboxId) as { modseq: number }).modseq;
          q.updateFlags.run(after.join(' '), modseq, mailboxId, r.uid);
          updated.push({ uid: r.uid, flags: after, modseq });
          const lower = (l: readonly string[]): Set<string> => new Set(l.map((f) => f.toLowerCase()));
          const [was, now] = [lower(before), lower(after)];
          const trigger: ComplaintTrigger = {
            kind: 'flags',
            in: kind,
            added: after.filter((f) => !was.has(f.toLowerCase())),
            removed: before.filter((f) => !now.has(f.toLowerCase())),
          };
          reviewComplaint(q, r.message_id, trigger, pending);
        }
      })();
      for (const u of updated) emit({ kind: 'flags', mailboxId, ...u, origin: opts.origin });
      pending.forEach(emitComplaint);
      return { updated, failed };
    },

    copy(mailboxId, uids, dest, origin) {
      return transfer(mailboxId, uids, dest, false, origin);
    },

    move(mailboxId, uids, dest, origin) {
      if (getMailbox(dest).id === mailboxId)
        throw new KithError(
          'ERR_SAME_MAILBOX',
          'the messages are already in this mailbox',
          'choose another mailbox',
        );
      return transfer(mailboxId, uids, dest, true, origin);
    },

    expunge(mailboxId, uids, origin) {
      requireStarted();
      const blobsToCheck: string[] = [];
      const removed: number[] = [];
      let modseq = 0;
      db.transaction(() => {
        const rows = uids
          ? entriesIn(mailboxId, uids)
          : (q.entryRange.all(mailboxId, 0, Number.MAX_SAFE_INTEGER) as {
              uid: number;
              flags: string;
              message_id: number;
            }[]);
        for (const r of rows) {
          if (!splitFlags(r.flags).some((f) => f.toLowerCase() === '\\deleted')) continue;
          q.deleteEntry.run(mailboxId, r.uid);
          removeOrphan(r.message_id, blobsToCheck);
          removed.push(r.uid);
        }
        if (removed.length) modseq = (q.bumpModseq.get(mailboxId) as { modseq: number }).modseq;
        for (const uid of removed) q.insertVanished.run(mailboxId, uid, modseq);
      })();
      collectBlobs(blobsToCheck);
      if (removed.length) emit({ kind: 'expunge', mailboxId, uids: removed, modseq, origin });
      return removed;
    },

    vanished(mailboxId, sinceModseq) {
      requireStarted();
      return (q.vanished.all(mailboxId, sinceModseq) as { uid: number }[]).map((r) => r.uid);
    },

    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    complaintCandidates(): ComplaintCandidate[] {
      requireStarted();
      return complaintCandidates(q);
    },

    onComplaint(listener) {
      complaintListeners.add(listener);
      return () => complaintListeners.delete(listener);
    },

    onArrival(listener) {
      arrivalListeners.add(listener);
      return () => arrivalListeners.delete(listener);
    },
  };
  return store;
}

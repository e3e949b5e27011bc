import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from '../../common/logger.ts';
import type { MailChange, MailStore, StagedArrival } from '../../gateway/mailbox/types.ts';
import {
  deliveredEntryId,
  entryIds,
  entryView,
  folderNamed,
  liveFolders,
  newEntryId,
  STANDARD_FOLDERS,
  type EntryView,
  type Op,
  type Touched,
} from './model.ts';
import type { SyncSink } from './engine.ts';
import type { LocalEntry, SyncStore } from './store.ts';

/** Marks mailbox changes the bridge itself makes, so it does not record them as the user's. */
const SYNC_ORIGIN = Symbol('kith-sync');
/** Adds per local change (a mailbox of 20,000 messages is recorded in changes of this many). */
const OPS_PER_CHANGE = 100;

const lower = (flags: readonly string[]): string[] => [...new Set(flags.map((f) => f.toLowerCase()))].sort();
const sameFlags = (x: readonly string[], y: readonly string[]): boolean =>
  lower(x).join(' ') === lower(y).join(' ');

export interface MailboxBridgeOptions {
  mail: MailStore;
  sync: SyncStore;
  /**
   * Records local ops as this agent's change and pushes it (SyncEngine.local); `alsoWrite` runs in
   * the same transaction as the change's log row.
   */
  record: (ops: Op[], alsoWrite?: () => void) => void;
  /** record() inside the mailbox's open transaction (SyncEngine.localInTransaction). */
  recordInTransaction?: (ops: Op[], alsoWrite: () => void) => (committed: boolean) => void;
  log: Logger;
}

/**
 * Between this gateway's mailbox store (IMAP UIDs, per gateway) and the entity's merged state.
 * What the user does over IMAP (APPEND, STORE, COPY, MOVE, EXPUNGE, CREATE, RENAME, DELETE) and
 * what the gateway delivers becomes ops of a local change; what siblings' changes decide is made
 * true in the local mailboxes with ordinary store calls, so IMAP sessions hear about it as about
 * any other session's change (IDLE). The bridge keeps, per entry, its local mailbox, UID and the
 * flags it last saw: a difference between that and the store is the user's, a difference
 * between that and the merged state is a sibling's. UIDVALIDITY is never touched. Everything runs
 * in one queue, so local observations and projections never interleave.
 */
export class MailboxBridge implements SyncSink {
  private tail: Promise<void> = Promise.resolve();
  private unsubscribe: (() => void) | undefined;
  private unlistenArrivals: (() => void) | undefined;
  /** True while the bridge changes mailboxes itself (their synchronous events are its own). */
  private projecting = false;
  /** Hash → entries that show in the merged state but wait for their bytes. */
  private readonly missing = new Map<string, Set<string>>();
  private serial = 0;

  constructor(private readonly o: MailboxBridgeOptions) {}

  /** Records what changed while sync was not running, then brings the mailboxes in line. */
  async start(): Promise<void> {
    this.unsubscribe = this.o.mail.subscribe((change) => this.onMailChange(change));
    this.unlistenArrivals = this.o.mail.onArrival?.((a) => this.onArrival(a));
    await this.enqueue(async () => {
      const { sync, mail } = this.o;
      for (const name of STANDARD_FOLDERS) {
        if (!sync.boxes().some((b) => b.fid === name))
          sync.putBox({ fid: name, mailboxId: mail.mailbox(name).id, name });
      }
      this.observeFolders();
      await this.observeAllEntries();
      this.projectFolders();
      await this.projectEntries(entryIds(sync));
    });
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unlistenArrivals?.();
    await this.tail.catch(() => undefined);
  }

  /** Waits until every queued observation and projection is done (tests, shutdown). */
  idle(): Promise<void> {
    return this.enqueue(async () => undefined);
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.tail.then(task);
    this.tail = run.catch((err: Error) => this.o.log.error({ err: err.message }, 'mailbox sync step failed'));
    return run;
  }

  // ---- SyncSink ----------------------------------------------------------------------------

  applied(touched: Touched): Promise<void> {
    return this.enqueue(async () => {
      const extra = touched.folders ? this.projectFolders() : [];
      await this.projectEntries([...touched.entries, ...extra]);
      if (touched.folders) this.dropDeadMailboxes();
    });
  }

  missingBlobs(): string[] {
    return [...this.missing.keys()];
  }

  async readBlob(hash: string): Promise<Buffer | undefined> {
    const local = this.o.sync.entryWithHash(hash);
    if (local === undefined) return undefined;
    return this.readLocal(local.mailboxId, local.uid).catch(() => undefined);
  }

  blobArrived(hash: string, bytes: Buffer): Promise<void> {
    return this.enqueue(async () => {
      const waiting = [...(this.missing.get(hash) ?? [])];
      this.missing.delete(hash);
      const folders = liveFolders(this.o.sync);
      for (const eid of waiting) {
        const want = entryView(this.o.sync, eid, folders);
        if (want && want.hash === hash && !this.o.sync.entry(eid)) await this.appendLocal(want, bytes);
      }
    });
  }

  // ---- observing the user ------------------------------------------------------------------

  private onMailChange(change: MailChange): void {
    if (this.projecting) return;
    if ('origin' in change && change.origin === SYNC_ORIGIN) return;
    void this.enqueue(async () => {
      switch (change.kind) {
        case 'exists':
          return this.observeExists(change);
        case 'flags':
          return this.observeFlags(change.mailboxId, [change.uid]);
        case 'expunge':
          return this.observeExpunge(change.mailboxId, change.uids);
        case 'mailboxes':
          return this.observeFolders();
        case 'mailbox-deleted':
          return; // the 'mailboxes' change right after it says which folder went
      }
    });
  }

  private fidOfMailbox(mailboxId: number): string {
    const name = this.o.mail.mailboxInfo(mailboxId).name;
    const known = this.o.sync
      .boxes()
      .filter((b) => b.mailboxId === mailboxId)
      .map((b) => b.fid);
    // The smallest live id for that name, as every device picks (model.ts folderNamed).
    return folderNamed(liveFolders(this.o.sync), name) ?? known.sort()[0] ?? name;
  }

  private async observeExists(c: Extract<MailChange, { kind: 'exists' }>): Promise<void> {
    const { sync } = this.o;
    if (sync.entryAt(c.mailboxId, c.uid)) return;
    const from = c.source?.moved ? sync.entryAt(c.source.mailboxId, c.source.uid) : undefined;
    if (from) {
      // A move keeps the entry (its id, flags, history): two devices moving it apart end with one copy.
      sync.putEntry({ ...from, mailboxId: c.mailboxId, uid: c.uid });
      this.o.record([{ t: 'move', e: from.eid, f: this.fidOfMailbox(c.mailboxId) }]);
      return;
    }
    const add = await this.addOpFor(c.mailboxId, c.uid, c.origin === undefined && c.source === undefined);
    // The mapping and the change that records it in one transaction: one commit (one fsync) per
    // arriving message instead of two (bench/RESULTS.md 10.8), and a crash between the two can no
    // longer leave an entry mapped whose add was never recorded (start() would not add it again).
    if (add) this.o.record([add.op], () => sync.putEntry(add.entry));
  }

  /**
   * A delivered message, inside the mailbox transaction that stores it: its add op and mapping are
   * recorded in that transaction (one commit for the message and its change, bench/RESULTS.md
   * 10.11; the change goes to siblings only once it committed). The 'exists' change that follows
   * then finds the entry mapped and does nothing. Without recordInTransaction, or while the
   * bridge projects, observeExists records it after the commit as before.
   */
  private onArrival(a: StagedArrival): ((committed: boolean) => void) | void {
    const { sync, recordInTransaction } = this.o;
    if (!recordInTransaction || this.projecting || sync.entryAt(a.mailboxId, a.uid)) return;
    const add = this.addOpOf(a.mailboxId, a.uid, a.raw, a.flags, a.internalDate, a.raw.length, true);
    return recordInTransaction([add.op], () => sync.putEntry(add.entry));
  }

  /** The add op of a local message and its mapping (not written), or undefined when it is gone already. */
  private async addOpFor(
    mailboxId: number,
    uid: number,
    delivered: boolean,
  ): Promise<{ op: Op; entry: LocalEntry } | undefined> {
    const { mail } = this.o;
    const [row] = mail.messages(mailboxId, [uid], { raw: true });
    if (row === undefined) return undefined;
    const raw = await mail.readRaw(row);
    return this.addOpOf(mailboxId, uid, raw, row.flags, row.internalDate, row.size, delivered);
  }

  private addOpOf(
    mailboxId: number,
    uid: number,
    raw: Buffer,
    flags: readonly string[],
    internalDate: Date,
    size: number,
    delivered: boolean,
  ): { op: Op; entry: LocalEntry } {
    const { sync } = this.o;
    const hash = createHash('sha256').update(raw).digest('hex');
    const kithId = delivered ? /^X-Kith-Message-Id:[ \t]*(\S+)/im.exec(headerOf(raw))?.[1] : undefined;
    let eid = kithId
      ? deliveredEntryId(kithId)
      : newEntryId({ w: Date.now(), c: this.serial++, a: randomId() as never }, 0);
    // The same delivered message already known (a sibling had it first): a second local copy is a new entry.
    if (sync.entry(eid)) eid = newEntryId({ w: Date.now(), c: this.serial++, a: randomId() as never }, 0);
    const entry = { eid, mailboxId, uid, hash, flags: lower(flags) };
    const op: Op = {
      t: 'add',
      e: eid,
      h: hash,
      f: this.fidOfMailbox(mailboxId),
      d: internalDate.getTime(),
      s: size,
      fl: [...flags].sort(),
    };
    return { op, entry };
  }

  private observeFlags(mailboxId: number, uids: number[]): void {
    const { mail, sync } = this.o;
    const ops: Op[] = [];
    const current = new Map(mail.entries(mailboxId).map((e) => [e.uid, e.flags]));
    for (const uid of uids) {
      const local = sync.entryAt(mailboxId, uid);
      const now = current.get(uid);
      if (!local || !now) continue;
      ops.push(...flagOps(local, now));
      sync.putEntry({ ...local, flags: lower(now) });
    }
    if (ops.length) this.o.record(ops);
  }

  private observeExpunge(mailboxId: number, uids: number[]): void {
    const ops: Op[] = [];
    for (const uid of uids) {
      const local = this.o.sync.entryAt(mailboxId, uid);
      if (!local) continue;
      this.o.sync.dropEntry(local.eid);
      ops.push({ t: 'expunge', e: local.eid });
    }
    if (ops.length) this.o.record(ops);
  }

  /** Folders created, renamed or deleted here (by the user, or before sync ran). */
  private observeFolders(): void {
    const { mail, sync } = this.o;
    const locals = mail.mailboxes();
    const ids = new Set(locals.map((m) => m.id));
    const boxes = sync.boxes();
    const ops: Op[] = [];
    for (const m of locals) {
      const rows = boxes.filter((b) => b.mailboxId === m.id);
      if (rows.length === 0) {
        const fid = `${randomId()}`;
        sync.putBox({ fid, mailboxId: m.id, name: m.name });
        ops.push({ t: 'folder', f: fid, n: m.name, live: true });
        continue;
      }
      for (const row of rows) {
        if (row.name === m.name || STANDARD_FOLDERS.includes(row.fid)) continue;
        sync.putBox({ ...row, name: m.name });
        ops.push({ t: 'folder', f: row.fid, n: m.name });
      }
    }
    for (const row of boxes) {
      if (ids.has(row.mailboxId)) continue;
      // IMAP DELETE removed the mailbox and its messages: each one it held is expunged.
      for (const e of sync.entriesIn(row.mailboxId)) {
        sync.dropEntry(e.eid);
        ops.push({ t: 'expunge', e: e.eid });
      }
      sync.dropBox(row.fid);
      ops.push({ t: 'folder', f: row.fid, live: false });
    }
    for (let i = 0; i < ops.length; i += OPS_PER_CHANGE) this.o.record(ops.slice(i, i + OPS_PER_CHANGE));
  }

  /** At start: local messages sync has not recorded (or whose flags changed meanwhile), and ones gone. */
  private async observeAllEntries(): Promise<void> {
    const { mail, sync } = this.o;
    let ops: Op[] = [];
    const flush = () => {
      if (ops.length) this.o.record(ops);
      ops = [];
    };
    for (const box of mail.mailboxes()) {
      const mapped = new Map(sync.entriesIn(box.id).map((e) => [e.uid, e]));
      for (const e of mail.entries(box.id)) {
        const local = mapped.get(e.uid);
        mapped.delete(e.uid);
        if (local) {
          ops.push(...flagOps(local, e.flags));
          if (!sameFlags(local.flags, e.flags)) sync.putEntry({ ...local, flags: lower(e.flags) });
        } else {
          const add = await this.addOpFor(box.id, e.uid, false);
          if (add) {
            sync.putEntry(add.entry);
            ops.push(add.op);
          }
        }
        if (ops.length >= OPS_PER_CHANGE) flush();
      }
      for (const gone of mapped.values()) {
        sync.dropEntry(gone.eid);
        ops.push({ t: 'expunge', e: gone.eid });
      }
    }
    flush();
  }

  // ---- projecting the merged state ---------------------------------------------------------

  /** Makes the local mailboxes the merged state's folders; returns entries to look at again. */
  private projectFolders(): string[] {
    const { mail, sync } = this.o;
    const folders = liveFolders(sync);
    const again: string[] = [];
    this.projecting = true;
    try {
      for (const [fid, name] of folders) {
        if (STANDARD_FOLDERS.includes(fid)) continue;
        const row = sync.boxes().find((b) => b.fid === fid);
        const current = row && mail.mailboxes().find((m) => m.id === row.mailboxId);
        if (current && current.name === name) continue;
        const taken = mail.mailboxes().find((m) => m.name === name);
        if (current && !taken && !folders.has(otherFidAt(sync.boxes(), current.id, fid) ?? '')) {
          mail.renameMailbox(current.name, name);
        } else {
          const target = taken ?? mail.createMailbox(name);
          if (current) again.push(...sync.entriesIn(current.id).map((e) => e.eid));
          sync.putBox({ fid, mailboxId: target.id, name });
        }
      }
      // Names of every row as they are now (a rename carries children along).
      const names = new Map(mail.mailboxes().map((m) => [m.id, m.name]));
      for (const row of sync.boxes()) {
        const name = names.get(row.mailboxId);
        if (name !== undefined && name !== row.name) sync.putBox({ ...row, name });
      }
      for (const row of sync.boxes()) {
        if (STANDARD_FOLDERS.includes(row.fid) || folders.has(row.fid)) continue;
        again.push(...sync.entriesIn(row.mailboxId).map((e) => e.eid));
      }
    } finally {
      this.projecting = false;
    }
    return again;
  }

  /** Deletes local mailboxes whose folders were deleted and that nothing shows in any more. */
  private dropDeadMailboxes(): void {
    const { mail, sync } = this.o;
    const folders = liveFolders(sync);
    for (const row of sync.boxes()) {
      if (STANDARD_FOLDERS.includes(row.fid) || folders.has(row.fid)) continue;
      sync.dropBox(row.fid);
      if (sync.boxes().some((b) => b.mailboxId === row.mailboxId)) continue;
      const box = mail.mailboxes().find((m) => m.id === row.mailboxId);
      if (!box || mail.entries(box.id).length > 0) continue;
      this.projecting = true;
      try {
        mail.deleteMailbox(box.name);
      } catch (err) {
        this.o.log.debug({ err: (err as Error).message, name: box.name }, 'a deleted folder stays');
      } finally {
        this.projecting = false;
      }
    }
  }

  private async projectEntries(eids: Iterable<string>): Promise<void> {
    const { sync } = this.o;
    const folders = liveFolders(sync);
    const fresh: EntryView[] = [];
    const failed = (eid: string, err: unknown) =>
      this.o.log.warn({ eid, err: (err as Error).message }, 'could not apply a synced message change');
    // Copies already here change with synchronous store calls: committed together, one commit
    // for a whole batch of a sibling's changes rather than one per message.
    sync.transaction(() => {
      for (const eid of new Set(eids)) {
        try {
          const want = entryView(sync, eid, folders);
          const local = sync.entry(eid);
          if (local) this.projectExisting(local, want);
          else if (want) fresh.push(want);
        } catch (err) {
          failed(eid, err);
        }
      }
    });
    for (const want of fresh) {
      try {
        await this.projectNew(want);
      } catch (err) {
        failed(want.eid, err);
      }
    }
  }

  /** A message that shows in the merged state and has no local copy yet: appended, once its bytes are here. */
  private async projectNew(want: EntryView): Promise<void> {
    if (this.o.sync.entry(want.eid)) return;
    const bytes = await this.readBlob(want.hash);
    if (bytes === undefined) {
      const set = this.missing.get(want.hash) ?? new Set();
      set.add(want.eid);
      this.missing.set(want.hash, set);
      return;
    }
    await this.appendLocal(want, bytes);
  }

  /** A local copy made to show as the merged state says: expunged, moved, its flags changed. */
  private projectExisting(local: LocalEntry, want: EntryView | undefined): void {
    const { mail, sync } = this.o;
    const eid = local.eid;
    if (want === undefined) {
      this.forget(eid);
      sync.dropEntry(eid);
      mail.setFlags(local.mailboxId, [local.uid], 'add', ['\\Deleted'], { origin: SYNC_ORIGIN });
      mail.expunge(local.mailboxId, [local.uid], SYNC_ORIGIN);
      return;
    }
    let at = local;
    if (mail.mailboxInfo(local.mailboxId).name !== want.mailbox) {
      this.ensureMailbox(want.mailbox);
      const moved = mail.move(local.mailboxId, [local.uid], want.mailbox, SYNC_ORIGIN);
      const pair = moved.pairs[0];
      if (pair === undefined) {
        sync.dropEntry(eid); // the local copy vanished meanwhile: append it again next time
        return;
      }
      at = { ...local, mailboxId: mail.mailbox(want.mailbox).id, uid: pair[1] };
      sync.putEntry(at);
    }
    // Only what the merged state changed since we last looked: a flag the user set a moment ago
    // and that is not recorded yet is left alone (its observation records it next).
    const seen = new Set(at.flags);
    const wanted = new Map(want.flags.map((f) => [f.toLowerCase(), f]));
    const add = [...wanted].filter(([l]) => !seen.has(l)).map(([, f]) => f);
    const remove = at.flags.filter((l) => !wanted.has(l));
    if (add.length) mail.setFlags(at.mailboxId, [at.uid], 'add', add, { origin: SYNC_ORIGIN });
    if (remove.length) mail.setFlags(at.mailboxId, [at.uid], 'remove', remove, { origin: SYNC_ORIGIN });
    if (add.length || remove.length) sync.putEntry({ ...at, flags: lower(want.flags) });
  }

  private async appendLocal(want: EntryView, bytes: Buffer): Promise<void> {
    this.ensureMailbox(want.mailbox);
    const { uid } = await this.o.mail.append({
      mailbox: want.mailbox,
      raw: bytes,
      flags: want.flags,
      internalDate: new Date(want.internalDate),
      origin: SYNC_ORIGIN,
    });
    const box = this.o.mail.mailbox(want.mailbox);
    this.o.sync.putEntry({
      eid: want.eid,
      mailboxId: box.id,
      uid,
      hash: want.hash,
      flags: lower(want.flags),
    });
    this.forget(want.eid, want.hash);
  }

  /** No longer waits for bytes for `eid` (under its hash when known: a history of 20,000 messages
   * would otherwise scan every missing hash per message appended). */
  private forget(eid: string, hash?: string): void {
    if (hash !== undefined) {
      const set = this.missing.get(hash);
      if (set?.delete(eid) && set.size === 0) this.missing.delete(hash);
      return;
    }
    for (const [hash, set] of this.missing) {
      if (set.delete(eid) && set.size === 0) this.missing.delete(hash);
    }
  }

  private ensureMailbox(name: string): void {
    if (this.o.mail.mailboxes().some((m) => m.name === name)) return;
    this.projecting = true;
    try {
      this.o.mail.createMailbox(name);
    } finally {
      this.projecting = false;
    }
  }

  private async readLocal(mailboxId: number, uid: number): Promise<Buffer | undefined> {
    const [row] = this.o.mail.messages(mailboxId, [uid], { raw: true });
    return row && this.o.mail.readRaw(row);
  }
}

/** Per-flag ops turning the flags last seen into the flags the store has now. */
function flagOps(local: LocalEntry, now: readonly string[]): Op[] {
  const before = new Set(local.flags);
  const after = new Map(now.map((f) => [f.toLowerCase(), f]));
  const ops: Op[] = [];
  for (const [l, f] of after) if (!before.has(l)) ops.push({ t: 'flag', e: local.eid, fl: f, on: true });
  for (const l of before) if (!after.has(l)) ops.push({ t: 'flag', e: local.eid, fl: l, on: false });
  return ops;
}

function otherFidAt(
  boxes: { fid: string; mailboxId: number }[],
  mailboxId: number,
  fid: string,
): string | undefined {
  return boxes.find((b) => b.mailboxId === mailboxId && b.fid !== fid)?.fid;
}

function headerOf(raw: Buffer): string {
  const end = raw.indexOf('\r\n\r\n');
  return raw.toString('latin1', 0, end < 0 ? Math.min(raw.length, 64 * 1024) : end);
}

function randomId(): string {
  return randomBytes(16).toString('base64url');
}

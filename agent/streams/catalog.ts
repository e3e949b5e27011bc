import { createHmac, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Fingerprint, MessageId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { Served, ServedCatalog } from '../../gateway/streams/types.ts';
import type { InboundTransfer, TransferEnd } from '../delivery/engine.ts';
import { parseFileHeader } from '../files.ts';
import { mailFileRanges, parseMailFileHeader } from '../../gateway/streams/mail-file.ts';
import { ArrivingFile, readAt, type SpoolView } from './arriving.ts';
import { mediaTypeOf } from './media-type.ts';

/** What the link mail needs to say about a transfer. */
export interface LinkNotice {
  /** The id of the transfer (the Kith message id of the payload). */
  id: MessageId;
  sender: Fingerprint;
  verified: boolean;
  name: string;
  type: string;
  size?: number;
  url: string;
  live: boolean;
  /** A mail with linked attachments (docs/protocol.md 8.3): the mail itself, its link parts to fill in. */
  stub?: Buffer;
  /** With a stub: the link of every linked attachment, in payload order (`url` is the first). */
  urls?: string[];
}

export interface StreamCatalogDeps {
  /** Directory of the link key and one small record per transfer (<dataDir>/streams). */
  dir: string;
  log: Logger;
  /** The URL of a link (the streams server's base URL, token, name). */
  link: (token: string, name: string) => string;
  /** Puts the link mail into the INBOX (idempotent per transfer id). */
  mail: (notice: LinkNotice) => Promise<void>;
  /** A transfer the delivery store is still assembling (used at start, before the receiver reloads it). */
  inbound?: (id: MessageId) => InboundTransfer | undefined;
}

/** What is kept on disk per transfer, so links keep working after a restart. */
interface TransferRecord {
  id: MessageId;
  sender: Fingerprint;
  verified: boolean;
  name: string;
  type: string;
  /** Where the file's bytes start in the payload. */
  offset: number;
  size: number;
  mailed: boolean;
  saved?: string;
  /** Where the stub of a KITH-MAIL-FILE payload is in the payload (8.3); absent for KITH-FILE. */
  stub?: { at: number; length: number };
  /**
   * A KITH-MAIL-FILE payload with more than one linked file: each one's place in the payload
   * (the first is also name/type/offset above), and where it was saved.
   */
  files?: { name: string; type: string; offset: number; size: number; saved?: string }[];
  /** The transfer will never complete (docs/protocol.md 8.1): how, why, when (Unix ms). */
  ended?: TransferEnd & { at: number };
}

/** What the link says once a transfer ended incomplete (the 410 answer's text). */
export function endedText(end: TransferEnd): string {
  return end.how === 'cancelled'
    ? `this transfer was cancelled by its sender: ${end.reason}`
    : `this transfer expired incomplete: ${end.reason}`;
}

/** The token key of the k-th file of a transfer: the transfer id alone for the first (links made before there could be several stay valid). */
const tokenKey = (id: MessageId, k: number): string => (k === 0 ? id : `${id}/${k}`);

/** One ArrivingFile per file a record describes. */
function servedOf(record: TransferRecord, view: SpoolView): ArrivingFile[] {
  const files = record.files ?? [
    { name: record.name, type: record.type, offset: record.offset, size: undefined, saved: record.saved },
  ];
  return files.map((f) => {
    const served = new ArrivingFile(view, f.offset, f.name, f.type, f.size);
    if (f.saved) served.complete(f.saved);
    else if (record.ended) served.end(endedText(record.ended));
    return served;
  });
}

/** The first bytes of chunk 0 that may hold the KITH-FILE header (files.ts MAX_HEADER). */
const HEADER_BYTES = 4096;

/**
 * Every transfer this node serves over its streams link: created when chunk 0 of a chunked
 * `kith send --file` payload is stored (its header names the file), mailed once, served from
 * the spool while it arrives and from received/ once saved. Links carry a token derived from a
 * node-local key (HMAC of the message id): unguessable, and the same after a restart.
 */
export class StreamCatalog implements ServedCatalog {
  private key: Buffer = Buffer.alloc(0);
  private readonly files = new Map<MessageId, { record: TransferRecord; served: ArrivingFile[] }>();
  private readonly pending = new Map<MessageId, SpoolView & { sender: Fingerprint; verified: boolean }>();
  private readonly tokens = new Map<string, { id: MessageId; k: number }>();
  /** Transfers whose chunk 0 is being read (once each). */
  private readonly reading = new Set<MessageId>();
  /** Served through other means (live stream segments); registered by agent/streams/live. */
  private readonly extra = new Map<string, Served>();

  constructor(private readonly deps: StreamCatalogDeps) {}

  async start(): Promise<void> {
    await mkdir(this.deps.dir, { recursive: true, mode: 0o700 });
    this.key = await loadKey(join(this.deps.dir, 'link.key'));
    const unmailed: TransferRecord[] = [];
    for (const name of await readdir(this.deps.dir)) {
      if (!/^[0-9a-f]{32}\.json$/.test(name)) continue;
      try {
        const record = JSON.parse(await readFile(join(this.deps.dir, name), 'utf8')) as TransferRecord;
        const view = record.saved ? undefined : this.deps.inbound?.(record.id);
        const served = servedOf(
          record,
          view ?? { spool: '', size: record.size, chunkSize: 1, has: () => false },
        );
        this.add(record, served);
        if (!record.mailed) unmailed.push(record);
      } catch (err) {
        this.deps.log.warn({ file: name, err: (err as Error).message }, 'unreadable transfer record skipped');
      }
    }
    // A crash between the record and its mail: the mail goes out now (mail() is idempotent).
    for (const record of unmailed) await this.sendLink(record);
  }

  /** The unguessable token of a transfer's link. */
  token(id: string): string {
    return createHmac('sha256', this.key).update(`kith-link:${id}`).digest('base64url').slice(0, 32);
  }

  /** The link of a transfer this catalog serves (of its k-th file), if any. */
  linkOf(id: MessageId, k = 0): string | undefined {
    const served = this.files.get(id)?.served[k];
    return served && this.deps.link(this.token(tokenKey(id, k)), served.name);
  }

  /** The links of every file of a transfer, in payload order. */
  linksOf(id: MessageId): string[] {
    return (this.files.get(id)?.served ?? []).map((_, k) => this.linkOf(id, k)!);
  }

  lookup(token: string): Served | undefined {
    const at = this.tokens.get(token);
    return at ? this.files.get(at.id)?.served[at.k] : this.extra.get(token);
  }

  /** Serves something else under a token (live streams). */
  register(token: string, served: Served): void {
    this.extra.set(token, served);
  }

  /** DeliverySink.onTransfer: a chunked payload started or resumed arriving. */
  onTransfer(t: InboundTransfer): void {
    const view = { spool: t.spool, size: t.size, chunkSize: t.chunkSize, has: (i: number) => t.has(i) };
    const known = this.files.get(t.id);
    if (known) return known.served.forEach((f) => f.attach(view));
    this.pending.set(t.id, { ...view, sender: t.sender, verified: t.verified });
    if (t.has(0)) void this.firstChunk(t.id);
  }

  /** DeliverySink.onChunk: wakes readers; chunk 0 names the file and sends the link mail. */
  onChunk(id: MessageId, index: number): void {
    const known = this.files.get(id);
    if (known) known.served.forEach((f) => f.notify());
    else if (index === 0 || this.pending.get(id)?.has(0)) void this.firstChunk(id);
  }

  /** The files were saved under received/ (KithNode.receive): serve them from there from now on. */
  async completed(id: MessageId, saved: string | readonly string[]): Promise<void> {
    this.pending.delete(id);
    const f = this.files.get(id);
    if (!f) return;
    const paths = typeof saved === 'string' ? [saved] : saved;
    f.served.forEach((served, k) => {
      if (paths[k]) served.complete(paths[k]);
      if (f.record.files?.[k] && paths[k]) f.record.files[k].saved = paths[k];
    });
    f.record.saved = paths[0];
    await this.persist(f.record);
  }

  /**
   * The transfer will never complete (its sender's cancel, or the idle expiry): waiting requests
   * end, new ones get 410 with the reason, and the record keeps it across restarts. The mail
   * already in the INBOX stays; its link says what happened.
   */
  async ended(id: MessageId, end: TransferEnd): Promise<void> {
    this.pending.delete(id);
    const f = this.files.get(id);
    if (!f || f.record.saved) return;
    f.record.ended = { ...end, at: Date.now() };
    f.served.forEach((served) => served.end(endedText(end)));
    await this.persist(f.record);
  }

  private add(record: TransferRecord, served: ArrivingFile[]): void {
    this.files.set(record.id, { record, served });
    served.forEach((_, k) => this.tokens.set(this.token(tokenKey(record.id, k)), { id: record.id, k }));
  }

  private async firstChunk(id: MessageId): Promise<void> {
    const view = this.pending.get(id);
    if (!view || this.reading.has(id) || this.files.has(id)) return;
    this.reading.add(id);
    try {
      const head = await readAt(view.spool, 0, Math.min(HEADER_BYTES, view.chunkSize, view.size));
      const file = parseFileHeader(head);
      const mailFile = file ? undefined : parseMailFileHeader(head);
      if (!file && !mailFile) {
        this.pending.delete(id);
        return; // a large mail, not a file: it goes to the INBOX as it is, with no link
      }
      let stub: TransferRecord['stub'];
      let files: TransferRecord['files'];
      if (mailFile) {
        stub = { at: mailFile.offset, length: mailFile.header.mail };
        if (mailFile.header.files.length > 1)
          files = mailFileRanges(mailFile, view.size).map((f) => ({ ...f, type: mediaTypeOf(f.name) }));
        // The mail goes out once every chunk holding it is stored (onChunk asks again).
        const last = Math.floor((stub.at + stub.length - 1) / view.chunkSize);
        for (let i = 0; i <= last; i++) if (!view.has(i)) return;
      }
      this.pending.delete(id);
      const name = file?.header.name ?? mailFile!.header.name;
      const record: TransferRecord = {
        id,
        sender: view.sender,
        verified: view.verified,
        name,
        type: mediaTypeOf(name),
        offset: file ? file.offset : stub!.at + stub!.length,
        size: view.size,
        mailed: false,
        stub,
        files,
      };
      this.add(record, servedOf(record, view));
      await this.persist(record);
      await this.sendLink(record);
    } catch (err) {
      this.deps.log.warn({ id, err: (err as Error).message }, 'link for an arriving file not made');
    } finally {
      this.reading.delete(id);
    }
  }

  private async sendLink(record: TransferRecord): Promise<void> {
    try {
      const stub = record.stub && (await this.readStub(record));
      if (record.stub && !stub) return; // the spool is gone: the hand-off delivers the mail
      await this.deps.mail({
        stub,
        id: record.id,
        sender: record.sender,
        verified: record.verified,
        name: record.name,
        type: record.type,
        size: record.files?.[0].size ?? record.size - record.offset,
        url: this.linkOf(record.id)!,
        urls: this.linksOf(record.id),
        live: false,
      });
      record.mailed = true;
      await this.persist(record);
    } catch (err) {
      this.deps.log.warn({ id: record.id, err: (err as Error).message }, 'link mail not delivered yet');
    }
  }

  /** The stub of a mail with a linked attachment, from the spool while it is there. */
  private async readStub(record: TransferRecord): Promise<Buffer | undefined> {
    const { at, length } = record.stub!;
    const path = this.files.get(record.id)?.served[0].spool || this.deps.inbound?.(record.id)?.spool;
    if (!path) return undefined;
    const stub = await readAt(path, at, length).catch(() => undefined);
    return stub?.length === length ? stub : undefined;
  }

  private async persist(record: TransferRecord): Promise<void> {
    const path = join(this.deps.dir, `${record.id}.json`);
    await writeFile(path + '.tmp', JSON.stringify(record), { mode: 0o600 });
    await rename(path + '.tmp', path);
  }
}

/** The node-local key links are derived from; made once. */
async function loadKey(path: string): Promise<Buffer> {
  try {
    const key = await readFile(path);
    if (key.length === 32) return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(32);
  await writeFile(path + '.tmp', key, { mode: 0o600 });
  await rename(path + '.tmp', path);
  return key;
}

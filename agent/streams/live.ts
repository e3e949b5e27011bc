import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { asMessageId, type Fingerprint, type MessageId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { Served } from '../../gateway/streams/types.ts';
import type { InboundDelivery } from '../delivery/engine.ts';
import { readAt, Wakeup } from './arriving.ts';
import { parseSegment, type SegmentHeader } from './live-format.ts';
import { safeMediaType } from './media-type.ts';

/** What is kept per live stream (<data dir>/streams/live-<key hash>.json). */
interface StreamRecord {
  key: string;
  /** A Kith-id-shaped name of the stream (link mail id, file prefix). */
  id: MessageId;
  sender: Fingerprint;
  verified: boolean;
  stream: string;
  name: string;
  type: string;
  /** Bytes 0..contiguous-1 are stored. */
  contiguous: number;
  /** Segments stored beyond the contiguous bytes (arrived out of order). */
  pending: { seq: number; offset: number; length: number }[];
  /** From the signed final segment. */
  final?: { seq: number; length: number };
  mailed: boolean;
  /** Where the bytes are: `.part` while open, the final name once complete. */
  file: string;
  saved: boolean;
}

/** A live stream as the links server reads it. */
class LiveServed implements Served {
  readonly changed = new Wakeup();
  constructor(readonly record: StreamRecord) {}

  get name(): string {
    return this.record.name;
  }
  get type(): string {
    return this.record.type;
  }

  length(): number | undefined {
    return this.record.final?.length;
  }

  arriving(): boolean {
    return !this.record.saved;
  }

  async read(offset: number, max: number, signal: AbortSignal): Promise<Buffer> {
    for (;;) {
      const r = this.record;
      if (r.final && offset >= r.final.length) return Buffer.alloc(0);
      if (offset < r.contiguous) {
        try {
          return await readAt(r.file, offset, Math.min(max, r.contiguous - offset));
        } catch (err) {
          // Renamed to its final name between the check and the read: read again from there.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          continue;
        }
      }
      await this.changed.wait(signal);
    }
  }
}

export interface LiveStreamsDeps {
  /** <data dir>/streams (records). */
  dir: string;
  /** <data dir>/received (the stream's bytes). */
  receivedDir: string;
  log: Logger;
  /** The link token of a key, and the link URL of a token. */
  token: (key: string) => string;
  url: (token: string, name: string) => string;
  /** Serves a stream under its token. */
  register: (token: string, served: Served) => void;
  /** The link mail (idempotent per id). */
  mail: (n: {
    id: MessageId;
    sender: Fingerprint;
    verified: boolean;
    name: string;
    type: string;
    url: string;
  }) => Promise<void>;
  /** The notice once the stream ended and is saved. */
  ended: (n: {
    id: MessageId;
    sender: Fingerprint;
    verified: boolean;
    name: string;
    size: number;
    saved: string;
  }) => Promise<void>;
}

/**
 * The receiving side of live streams: each segment (a delivered message) is written at its
 * offset into received/<id>-<name>.part, the contiguous prefix is served live, and when the
 * signed final segment and everything before it are stored the file gets its final name.
 */
export class LiveStreams {
  private readonly streams = new Map<string, LiveServed>();
  /** Per stream: segments are applied one after the other. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: LiveStreamsDeps) {}

  async start(): Promise<void> {
    await mkdir(this.deps.dir, { recursive: true, mode: 0o700 });
    await mkdir(this.deps.receivedDir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.deps.dir)) {
      if (!/^live-[0-9a-f]{32}\.json$/.test(name)) continue;
      try {
        const record = JSON.parse(await readFile(join(this.deps.dir, name), 'utf8')) as StreamRecord;
        this.serve(record);
      } catch (err) {
        this.deps.log.warn({ file: name, err: (err as Error).message }, 'unreadable stream record skipped');
      }
    }
  }

  /** The link of a stream (key = sender fingerprint : stream id), if it arrived. */
  linkOf(sender: Fingerprint, stream: string): string | undefined {
    const s = this.streams.get(`${sender}:${stream}`);
    return s && this.deps.url(this.deps.token(s.record.key), s.record.name);
  }

  /**
   * Takes a delivered message if it is a stream segment (true: it is stored, not mail). Durable
   * when it resolves: the bytes are synced and the record written before "delivered" goes back.
   */
  async accept(message: InboundDelivery): Promise<boolean> {
    const head = message.data ?? (await readHead(message.file!));
    const parsed = parseSegment(head);
    if (!parsed) return false;
    const key = `${message.sender}:${parsed.header.stream}`;
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(() => this.apply(key, message, parsed.header, parsed.offset));
    this.queues.set(key, next);
    try {
      await next;
    } finally {
      if (this.queues.get(key) === next) this.queues.delete(key);
    }
    return true;
  }

  private async apply(key: string, message: InboundDelivery, h: SegmentHeader, at: number): Promise<void> {
    const length = message.size - at;
    let s = this.streams.get(key);
    if (!s) {
      const id = asMessageId(createHash('sha256').update(`kith-stream:${key}`).digest('hex').slice(0, 32));
      const record: StreamRecord = {
        key,
        id,
        sender: message.sender,
        verified: message.verified,
        stream: h.stream,
        name: h.name,
        type: safeMediaType(h.type, h.name),
        contiguous: 0,
        pending: [],
        mailed: false,
        file: join(this.deps.receivedDir, `${id.slice(0, 8)}-${h.name}.part`),
        saved: false,
      };
      s = this.serve(record);
    }
    const r = s.record;
    if (r.saved) return; // a late duplicate of a complete stream
    if (h.final && h.length !== h.offset + length) {
      this.deps.log.warn({ key, seq: h.seq }, 'final segment with an inconsistent length ignored');
      return;
    }
    if (r.final && h.offset + length > r.final.length) {
      this.deps.log.warn({ key, seq: h.seq }, 'segment past the signed end of the stream ignored');
      return;
    }
    const known = h.offset + length <= r.contiguous || r.pending.some((p) => p.seq === h.seq);
    if (!known) {
      await writeAt(r.file, h.offset, message, at);
      r.pending.push({ seq: h.seq, offset: h.offset, length });
      r.pending.sort((x, y) => x.offset - y.offset);
      // The contiguous prefix grows over every stored segment that starts at or before its end.
      while (r.pending.length > 0 && r.pending[0].offset <= r.contiguous) {
        const p = r.pending.shift()!;
        r.contiguous = Math.max(r.contiguous, p.offset + p.length);
      }
    }
    if (h.final) r.final = { seq: h.seq, length: h.length! };
    const complete = r.final !== undefined && r.contiguous >= r.final.length;
    if (complete) {
      await (await open(r.file, 'a')).close(); // an empty stream has no bytes written
      const target = r.file.replace(/\.part$/, '');
      await rename(r.file, target);
      r.file = target;
      r.saved = true;
    }
    await this.persist(r);
    s.changed.wake();
    if (!r.mailed) {
      await this.deps.mail({
        id: r.id,
        sender: r.sender,
        verified: r.verified,
        name: r.name,
        type: r.type,
        url: this.deps.url(this.deps.token(key), r.name),
      });
      r.mailed = true;
      await this.persist(r);
    }
    if (complete) {
      await this.deps.ended({
        id: r.id,
        sender: r.sender,
        verified: r.verified,
        name: r.name,
        size: r.final!.length,
        saved: r.file,
      });
    }
  }

  private serve(record: StreamRecord): LiveServed {
    const served = new LiveServed(record);
    this.streams.set(record.key, served);
    this.deps.register(this.deps.token(record.key), served);
    return served;
  }

  private async persist(r: StreamRecord): Promise<void> {
    const name = createHash('sha256').update(r.key).digest('hex').slice(0, 32);
    const path = join(this.deps.dir, `live-${name}.json`);
    await writeFile(path + '.tmp', JSON.stringify(r), { mode: 0o600 });
    await rename(path + '.tmp', path);
  }
}

async function readHead(path: string): Promise<Buffer> {
  return readAt(path, 0, 4096);
}

/** Writes the segment's bytes (from a delivered payload at `from`) at `offset`, synced. */
async function writeAt(path: string, offset: number, message: InboundDelivery, from: number): Promise<void> {
  const fh = await open(path, 'a+');
  await fh.close();
  if (message.data) {
    const out = await open(path, 'r+');
    try {
      const data = message.data.subarray(from);
      await out.write(data, 0, data.length, offset);
      await out.sync();
    } finally {
      await out.close();
    }
    return;
  }
  await pipeline(
    createReadStream(message.file!, { start: from }),
    createWriteStream(path, { flags: 'r+', start: offset }),
  );
  const out = await open(path, 'r+');
  try {
    await out.sync();
  } finally {
    await out.close();
  }
}

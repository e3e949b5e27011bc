import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { asMessageId, type Fingerprint, type MessageId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { GatewaySink } from '../../gateway/delivery.ts';
import { linkMail } from '../../gateway/streams/link-mail.ts';
import { StreamServer } from '../../gateway/streams/server.ts';
import type { InboundTransfer, TransferEnd } from '../delivery/engine.ts';
import type { DeliveryStore } from '../delivery/store.ts';
import { decodeManifest } from '../payload/manifest.ts';
import { ChunkBitmap, spoolPath } from '../payload/spool.ts';
import { StreamCatalog, type LinkNotice } from './catalog.ts';
import { registerStreamMethods } from './control.ts';
import { LiveStreams } from './live.ts';
import { LiveSender } from './live-sender.ts';
import { fileNotice, saveReceived } from '../files.ts';
import {
  MAIL_FILE_MAX_HEADER,
  mailFileRanges,
  parseMailFileHeader,
  stubWithLinks,
} from '../../gateway/streams/mail-file.ts';
import { stat } from 'node:fs/promises';
import { readAt } from './arriving.ts';
import type { InboundDelivery } from '../delivery/engine.ts';
import type { ControlServer } from '../control/server.ts';
import type { OutboundMessage } from '../../gateway/delivery.ts';
import { KithError } from '../../common/errors.ts';

export { StreamCatalog } from './catalog.ts';

export interface StreamsDeps {
  config: { enabled: boolean; host: string; port: number };
  dataDir: string;
  log: Logger;
  /** Our own address (the link mail's To). */
  self: string;
  /** How a sender appears in mail (the contact's address and name, if known). */
  senderOf: (fpr: Fingerprint) => { email?: string; name?: string; keyKnown: boolean };
  /** The gateway's sink (the link mail goes into the INBOX like any incoming message). */
  sink: () => GatewaySink;
  /** The delivery store, for transfers still being assembled at start. */
  store: DeliveryStore;
}

/** The Kith id of a transfer's link mail: its own id, so the mailbox keeps it apart from the file notice. */
export function linkMailId(id: MessageId): MessageId {
  return asMessageId(createHash('sha256').update(`kith-link-mail:${id}`).digest('hex').slice(0, 32));
}

/**
 * Play-while-it-arrives (issue 15): the catalog of arriving transfers and the gateway's local
 * HTTP server that serves them. The node passes `hooks` to the delivery engine's sink and calls
 * `completed` once a file is saved.
 */
export class Streams {
  readonly catalog: StreamCatalog;
  readonly server: StreamServer;
  /** Live streams arriving (segments of `kith stream`). */
  readonly live: LiveStreams;

  constructor(private readonly deps: StreamsDeps) {
    this.server = new StreamServer({
      host: deps.config.host,
      port: deps.config.port,
      catalog: { lookup: (token) => this.catalog.lookup(token) },
      log: deps.log,
    });
    this.catalog = new StreamCatalog({
      dir: join(deps.dataDir, 'streams'),
      log: deps.log,
      link: (token, name) => this.server.linkFor(token, name),
      mail: (notice) => this.mail(notice),
      inbound: (id) => this.inbound(id),
    });
    this.live = new LiveStreams({
      dir: join(deps.dataDir, 'streams'),
      receivedDir: join(deps.dataDir, 'received'),
      log: deps.log,
      token: (key) => this.catalog.token(`stream:${key}`),
      url: (token, name) => this.server.linkFor(token, name),
      register: (token, served) => this.catalog.register(token, served),
      mail: (n) => this.mail({ ...n, live: true }),
      ended: (n) => this.ended(n),
    });
  }

  async start(): Promise<void> {
    if (!this.deps.config.enabled) return;
    await this.server.start();
    await this.catalog.start();
    await this.live.start();
  }

  /** A delivered message that is a live stream segment is stored here, not in the INBOX. */
  acceptSegment(message: InboundDelivery): Promise<boolean> {
    return this.live.accept(message);
  }

  /** `kith stream`'s control methods (the sending side). */
  registerControl(
    control: ControlServer,
    deps: {
      self: Fingerprint;
      outgoingDir: string;
      resolve: (
        to: string,
      ) => Promise<{ ok: true; fingerprint: Fingerprint } | { ok: false; message: string }>;
      submit: (message: OutboundMessage) => Promise<void>;
      /** The delivery engine's counters (the `metrics` control method). */
      metrics?: () => Record<string, number>;
    },
  ): void {
    const sender = new LiveSender({
      self: deps.self,
      outgoingDir: deps.outgoingDir,
      resolve: async (to) => {
        const r = await deps.resolve(to.includes('@') ? to : `${to}@kith`);
        if (!r.ok) throw new KithError('ERR_RECIPIENT_REFUSED', `${to}: ${r.message}`);
        return r.fingerprint;
      },
      submit: deps.submit,
    });
    registerStreamMethods(control, sender, deps.metrics);
  }

  async stop(): Promise<void> {
    await this.server.stop();
  }

  /** DeliverySink hooks for the engine (no-ops when streams are disabled). */
  readonly hooks = {
    onTransfer: (t: InboundTransfer): void => {
      if (this.deps.config.enabled) this.catalog.onTransfer(t);
    },
    onChunk: (id: MessageId, index: number): void => {
      if (this.deps.config.enabled) this.catalog.onChunk(id, index);
    },
    onTransferEnded: (id: MessageId, end: TransferEnd): void => {
      if (!this.deps.config.enabled) return;
      this.catalog
        .ended(id, end)
        .catch((err: Error) =>
          this.deps.log.warn({ id, err: err.message }, 'recording the end of a transfer failed'),
        );
    },
  };

  /** A file payload was saved under received/. */
  completed(id: MessageId, saved: string | readonly string[]): Promise<void> {
    return this.deps.config.enabled ? this.catalog.completed(id, saved) : Promise.resolve();
  }

  /** The INBOX notice once a live stream ended and is saved (section 8's notice form). */
  private async ended(n: {
    id: MessageId;
    sender: Fingerprint;
    verified: boolean;
    name: string;
    size: number;
    saved: string;
  }): Promise<void> {
    const who = this.deps.senderOf(n.sender);
    await this.deps.sink().receive({
      id: n.id,
      raw: fileNotice(
        { fingerprint: n.sender, email: who.email, name: who.name },
        this.deps.self,
        { name: n.name, size: n.size },
        n.saved,
        n.id,
      ),
      sender: { fingerprint: n.sender, email: who.email, name: who.name },
      verified: n.verified,
      senderKeyKnown: who.keyKnown,
      receivedAt: new Date(),
    });
  }

  /**
   * A delivered KITH-MAIL-FILE payload (docs/protocol.md 8.3): the attachment is saved under
   * received/, and the mail goes into the INBOX unless its link mail already did (the same Kith
   * id: the sink stores it once). False for any other payload.
   */
  async acceptLinkedMail(message: InboundDelivery): Promise<boolean> {
    const head = message.file
      ? await readAt(message.file, 0, MAIL_FILE_MAX_HEADER)
      : message.data?.subarray(0, MAIL_FILE_MAX_HEADER);
    const parsed = head && parseMailFileHeader(head);
    if (!parsed) return false;
    const size = message.file ? (await stat(message.file)).size : message.data!.length;
    const stub = message.file
      ? await readAt(message.file, parsed.offset, parsed.header.mail)
      : message.data!.subarray(parsed.offset, parsed.offset + parsed.header.mail);
    const dir = join(this.deps.dataDir, 'received');
    const ranges = mailFileRanges(parsed, size);
    const saved: string[] = [];
    for (const [k, f] of ranges.entries()) {
      // Two attachments of the same name are kept apart by their place in the mail.
      const name = ranges.findIndex((g) => g.name === f.name) < k ? `${k + 1}-${f.name}` : f.name;
      saved.push(
        await saveReceived(
          message.file
            ? { path: message.file, offset: f.offset, end: f.offset + f.size }
            : message.data!.subarray(f.offset, f.offset + f.size),
          name,
          dir,
          message.id,
        ),
      );
    }
    await this.completed(message.id, saved);
    const urls = this.deps.config.enabled ? this.catalog.linksOf(message.id) : [];
    await this.deliverStub(
      message.id,
      message.sender,
      message.verified,
      stubWithLinks(
        stub,
        saved.map((path, k) => (urls[k] ? { url: urls[k] } : { saved: path })),
      ),
      message.receivedAt,
    );
    return true;
  }

  private async deliverStub(
    id: MessageId,
    sender: Fingerprint,
    verified: boolean,
    raw: Buffer,
    receivedAt = new Date(),
  ): Promise<void> {
    const who = this.deps.senderOf(sender);
    await this.deps.sink().receive({
      id,
      raw,
      sender: { fingerprint: sender, email: who.email, name: who.name },
      verified,
      senderKeyKnown: who.keyKnown,
      receivedAt,
    });
  }

  private async mail(n: Omit<LinkNotice, 'size'> & { size?: number }): Promise<void> {
    if (!this.deps.config.enabled) return; // no server: a link would lead nowhere
    // A mail with a linked attachment is the mail itself, under the message's own id.
    if (n.stub)
      return this.deliverStub(
        n.id,
        n.sender,
        n.verified,
        stubWithLinks(
          n.stub,
          (n.urls ?? [n.url]).map((url) => ({ url })),
        ),
      );
    const who = this.deps.senderOf(n.sender);
    const email = who.email ?? `${n.sender.toLowerCase()}@kith`;
    const id = linkMailId(n.id);
    await this.deps.sink().receive({
      id,
      raw: linkMail({
        from: { email, name: who.name },
        to: this.deps.self,
        name: n.name,
        type: n.type,
        size: n.size,
        url: n.url,
        messageId: `${id}.link@kith`,
        live: n.live,
      }),
      sender: { fingerprint: n.sender, email: who.email, name: who.name },
      verified: n.verified,
      senderKeyKnown: who.keyKnown,
      receivedAt: new Date(),
    });
  }

  private inbound(id: MessageId): InboundTransfer | undefined {
    const rec = this.deps.store.getInbound(id);
    if (!rec) return undefined;
    const { manifest } = decodeManifest(rec.manifest);
    const bitmap = new ChunkBitmap(manifest.chunks, Buffer.from(rec.received));
    return {
      id,
      sender: rec.sender,
      verified: rec.verified,
      size: manifest.size,
      chunkSize: manifest.chunkSize,
      chunks: manifest.chunks,
      spool: spoolPath(join(this.deps.dataDir, 'spool'), id),
      has: (i) => bitmap.has(i),
    };
  }
}

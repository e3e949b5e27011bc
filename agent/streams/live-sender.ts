import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KithError } from '../../common/errors.ts';
import { asMessageId, type Fingerprint, type MessageId } from '../../common/ids.ts';
import type { OutboundMessage } from '../../gateway/delivery.ts';
import { encodeSegment } from './live-format.ts';
import { safeMediaType } from './media-type.ts';

interface Open {
  to: Fingerprint;
  name: string;
  type: string;
  seq: number;
  offset: number;
  /** Writes of this stream, one after the other (seq and offset in order). */
  queue: Promise<unknown>;
}

export interface LiveSenderDeps {
  self: Fingerprint;
  /** Directory of outbound payload files (kept until each is delivered). */
  outgoingDir: string;
  /** The recipient's fingerprint for an address or fingerprint, or a KithError. */
  resolve: (to: string) => Promise<Fingerprint>;
  /** Hands one payload to delivery; durable when it resolves (AgentDeliveryService.submit). */
  submit: (message: OutboundMessage) => Promise<void>;
}

/**
 * The sending side of `kith stream`: the node numbers the segments the CLI writes and sends each
 * as its own message. State is in memory: a stream does not survive a restart of the sending node
 * (the CLI then gets ERR_UNKNOWN_STREAM and the recipient keeps what arrived).
 */
export class LiveSender {
  private readonly open = new Map<string, Open>();

  constructor(private readonly deps: LiveSenderDeps) {}

  async start(p: { to: string; name?: string; type?: string }): Promise<{ stream: string; to: Fingerprint }> {
    const to = await this.deps.resolve(p.to);
    const stream = randomBytes(16).toString('hex');
    const name = p.name && p.name.length > 0 ? p.name : 'live.webm';
    this.open.set(stream, {
      to,
      name,
      type: safeMediaType(p.type, name),
      seq: 0,
      offset: 0,
      queue: Promise.resolve(),
    });
    return { stream, to };
  }

  /** Sends the next segment; resolves once it is durable in the outbox. */
  write(p: {
    stream: string;
    data: Buffer;
    final: boolean;
  }): Promise<{ id: MessageId; seq: number; offset: number }> {
    const s = this.open.get(p.stream);
    if (!s) {
      return Promise.reject(
        new KithError('ERR_UNKNOWN_STREAM', `no open stream ${p.stream}`, 'start it again with kith stream'),
      );
    }
    const next = s.queue.then(() => this.send(p.stream, s, p.data, p.final));
    s.queue = next.catch(() => undefined);
    return next;
  }

  private async send(stream: string, s: Open, data: Buffer, final: boolean) {
    const id = asMessageId(randomBytes(16).toString('hex'));
    const header = {
      stream,
      seq: s.seq,
      offset: s.offset,
      name: s.name,
      type: s.type,
      final,
      ...(final ? { length: s.offset + data.length } : {}),
    };
    const payload = encodeSegment(header, data);
    const rawPath = join(this.deps.outgoingDir, id);
    await writeFile(rawPath, payload, { mode: 0o600 });
    try {
      await this.deps.submit({ id, from: this.deps.self, to: s.to, rawPath, size: payload.length });
    } catch (err) {
      await rm(rawPath, { force: true });
      throw err;
    }
    const sent = { id, seq: s.seq, offset: s.offset };
    s.seq++;
    s.offset += data.length;
    if (final) this.open.delete(stream);
    return sent;
  }
}

// The baseline for the delivery benchmark: a bare libp2p node (TCP + Noise + yamux, the same
// stack and stream window Kith's links use) in its own process. A relay pipes each incoming
// stream to the next hop, both ways, with backpressure; the last node is a sink that acks
// messages or writes a bulk stream to a file. No crypto beyond Noise, no queue, no storage
// for messages: the floor under what Kith does per hop. Driven over IPC by bench/delivery/run.ts.
import '../../common/polyfill.ts';
import { createReadStream, createWriteStream } from 'node:fs';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { tcp } from '@libp2p/tcp';
import type { Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';

const PROTOCOL = '/kith-bench/pipe/1';
type Params = Record<string, unknown>;

let node: Libp2p | undefined;
let next: string | undefined;
let sinkFile = '';
/** Wall-clock ms (epoch) when the sink had received the first FIRST_BYTES of a bulk stream. */
let firstAt = 0;
const FIRST_BYTES = 2 * 1024 * 1024;

/** Forwards a's bytes to b; pauses a while b is full; half-closes b when a finished writing. */
function pipe(a: Stream, b: Stream): void {
  a.addEventListener('message', (e) => {
    if (b.writeStatus !== 'writable') return;
    if (!b.send(e.data)) {
      a.pause();
      b.onDrain().then(
        () => a.resume(),
        () => undefined,
      );
    }
  });
  a.addEventListener('remoteCloseWrite', () => void b.close().catch(() => undefined));
  a.addEventListener('close', (e) => {
    if (e.error) b.abort(e.error);
  });
}

function u32(n: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** Frames of [u32 length][bytes], fed with arbitrary chunks. */
function framer(onFrame: (frame: Buffer) => void): (chunk: Uint8Array) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([buf, chunk]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const len = buf.readUInt32BE(0);
      onFrame(buf.subarray(4, 4 + len));
      buf = buf.subarray(4 + len);
    }
  };
}

/** The sink: 'M' then frames, each acked with its 4-byte sequence number; 'B' then bytes to a file. */
function sink(stream: Stream): void {
  let mode: 'M' | 'B' | undefined;
  let onFrame: ((chunk: Uint8Array) => void) | undefined;
  let file: ReturnType<typeof createWriteStream> | undefined;
  let received = 0;
  const handle = (chunk: Uint8Array): void => {
    if (mode === 'M') onFrame!(chunk);
    else {
      if (received < FIRST_BYTES && received + chunk.length >= FIRST_BYTES)
        firstAt = performance.timeOrigin + performance.now();
      received += chunk.length;
      if (!file!.write(chunk)) {
        stream.pause();
        file!.once('drain', () => stream.resume());
      }
    }
  };
  stream.addEventListener('message', (e) => {
    let chunk = e.data.subarray();
    if (mode === undefined) {
      mode = chunk[0] === 0x4d ? 'M' : 'B';
      chunk = chunk.subarray(1);
      if (mode === 'M') onFrame = framer((frame) => stream.send(frame.subarray(0, 4)));
      else file = createWriteStream(sinkFile);
    }
    if (chunk.length > 0) handle(chunk);
  });
  stream.addEventListener('remoteCloseWrite', () => {
    if (mode !== 'B') return void stream.close().catch(() => undefined);
    file!.end(() => {
      const count = Buffer.alloc(8);
      count.writeBigUInt64BE(BigInt(received));
      stream.send(count);
      void stream.close().catch(() => undefined);
    });
  });
}

async function open(): Promise<Stream> {
  const stream = await node!.dialProtocol(multiaddr(next!), PROTOCOL);
  stream.inactivityTimeout = 0;
  return stream;
}

async function send(stream: Stream, data: Uint8Array): Promise<void> {
  if (!stream.send(data)) await stream.onDrain();
}

/** Sends messages of `size` bytes with at most `window` unacknowledged; per-message round trips in ms. */
async function messages(count: number, size: number, window: number): Promise<number[]> {
  const stream = await open();
  const sentAt: number[] = [];
  const rtts: number[] = [];
  let acked = 0;
  let wake: (() => void) | undefined;
  let pending = Buffer.alloc(0);
  stream.addEventListener('message', (e) => {
    pending = Buffer.concat([pending, e.data.subarray()]);
    while (pending.length >= 4) {
      const seq = pending.readUInt32BE(0);
      pending = pending.subarray(4);
      rtts[seq] = performance.now() - sentAt[seq]!;
      acked++;
    }
    wake?.();
  });
  await send(stream, Buffer.from('M'));
  const body = Buffer.alloc(size - 4, 0x78);
  for (let seq = 0; seq < count; seq++) {
    while (seq - acked >= window) await new Promise<void>((r) => (wake = r));
    sentAt[seq] = performance.now();
    await send(stream, Buffer.concat([u32(size), u32(seq), body]));
  }
  while (acked < count) await new Promise<void>((r) => (wake = r));
  await stream.close();
  return rtts;
}

/** Streams a file to the sink; resolves with the byte count the sink wrote. */
async function bulk(path: string): Promise<number> {
  const stream = await open();
  const reply = new Promise<number>((resolve, reject) => {
    stream.addEventListener('message', (e) =>
      resolve(Number(Buffer.from(e.data.subarray()).readBigUInt64BE(0))),
    );
    stream.addEventListener('close', (e) => reject(e.error ?? new Error('closed without a count')));
  });
  await send(stream, Buffer.from('B'));
  for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) {
    await send(stream, chunk as Buffer);
  }
  await stream.close();
  return reply;
}

const methods: Record<string, (p: Params) => Promise<unknown>> = {
  async init(p) {
    sinkFile = String(p.sinkFile ?? '/dev/null');
    node = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: 1024 * 1024 } })],
    });
    await node.handle(
      PROTOCOL,
      async (inbound) => {
        inbound.inactivityTimeout = 0;
        if (!next) return sink(inbound);
        inbound.pause();
        const outbound = await open();
        pipe(inbound, outbound);
        pipe(outbound, inbound);
        inbound.resume();
      },
      { maxInboundStreams: 256, maxOutboundStreams: 256 },
    );
    return node.getMultiaddrs()[0]!.toString();
  },
  async next(p) {
    next = String(p.addr);
    await node!.dial(multiaddr(next));
    return true;
  },
  async messages(p) {
    return messages(Number(p.count), Number(p.size), Number(p.window ?? 1));
  },
  async bulk(p) {
    return bulk(String(p.path));
  },
  /** When the sink had the first 2 MiB of the last bulk stream (epoch ms; 0 if not yet). */
  async firstBytes() {
    return firstAt;
  },
  async stop() {
    await node?.stop();
    return true;
  },
};

process.on('message', (msg: { id: number; method: string; params: Params }) => {
  const method = methods[msg.method];
  const run = method ? method(msg.params) : Promise.reject(new Error(`no method ${msg.method}`));
  run.then(
    (result) => process.send!({ id: msg.id, result }),
    (err: Error) => process.send!({ id: msg.id, error: err.message }),
  );
});
process.on('disconnect', () => {
  void (node?.stop() ?? Promise.resolve()).finally(() => process.exit(0));
});

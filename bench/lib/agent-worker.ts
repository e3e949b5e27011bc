// One Kith node in its own process (the same KithNode `kith start` runs, with its own private
// redis-server), driven by the benchmark over IPC so that each agent's peak memory is its own.
// Started by bench/lib/agents.ts; not meant to be run by hand.
import '../../common/polyfill.ts';
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance as perf, type EventLoopUtilization } from 'node:perf_hooks';
import { KithNode } from '../../agent/node.ts';
import { createIdentity } from '../../agent/identity/identity.ts';
import { filePayloadInPlace, writeFilePayload } from '../../agent/files.ts';
import type { OutboundPayload } from '../../agent/delivery/engine.ts';
import { hashFile } from '../../agent/payload/source.ts';
import { asMessageId, type Fingerprint, type MessageId } from '../../common/ids.ts';
import { createLogger } from '../../common/logger.ts';
import { loadConfig } from '../../config/load.ts';
import { openDatabase } from '../../store/db.ts';
import { prepareDataDir } from '../../store/datadir.ts';

type Params = Record<string, unknown>;
type Request = { id: number; method: string; params: Params };

let node: KithNode | undefined;
let lastLoop: EventLoopUtilization | undefined;
let lastCpu: NodeJS.CpuUsage | undefined;
/** Wall-clock ms (epoch) when the last timed sendFile handed its payload to the engine. */
let sentAt = 0;
const waiting = new Map<MessageId, { resolve: () => void; reject: (err: Error) => void }>();

function required(): KithNode {
  if (!node) throw new Error('node not started');
  return node;
}

/** A small RFC 5322 message like a one-paragraph e-mail (about 1 KB). */
function smallMail(from: string, to: string, id: string): Buffer {
  return Buffer.from(
    [
      `From: <${from}>`,
      `To: <${to}>`,
      `Subject: bench ${id}`,
      `Message-ID: <${id}@bench>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'x'.repeat(800),
      '',
    ].join('\r\n'),
  );
}

/** Sends through the engine (no SMTP, no outbox job) and resolves when the recipient reported it durable. */
async function engineSend(to: Fingerprint, source: OutboundPayload['source'], id: MessageId): Promise<void> {
  const done = new Promise<void>((resolve, reject) => waiting.set(id, { resolve, reject }));
  await required().engine.send({ id, to, source });
  await done;
}

const methods: Record<string, (p: Params) => Promise<unknown>> = {
  /** Only creates the identity (as `kith init` does, in its own short-lived process). */
  async identity(p) {
    const name = String(p.name);
    const db = openDatabase(prepareDataDir(String(p.dir)).database);
    try {
      await createIdentity(db, { name, email: `${name}@bench.kith`, passphrase: String(p.passphrase) });
    } finally {
      db.close();
    }
    return true;
  },
  /** Starts the node; creates its identity first unless `passphrase` names one made by identity(). */
  async init(p) {
    const name = String(p.name);
    const dataDir = String(p.dir);
    const passphrase =
      p.passphrase === undefined ? randomBytes(18).toString('base64url') : String(p.passphrase);
    if (p.passphrase === undefined) await methods.identity!({ name, dir: dataDir, passphrase });
    const config = loadConfig({
      env: {},
      overrides: {
        dataDir,
        logLevel: 'error',
        p2p: { listen: ['/ip4/127.0.0.1/tcp/0'] },
        // Plain loopback on both sides of the comparison: Postfix and Dovecot run without TLS too.
        smtp: { port: 0, allowInsecureAuth: true },
        imap: { port: 0, allowInsecureAuth: true },
        http: { port: 0 },
        streams: { port: 0 },
        delivery: { stallTimeoutMs: Number(p.stallTimeoutMs ?? 30_000) },
        // A relay lets a new neighbour hand on ~120 packets an hour (spam control, agent/spam/
        // decisions.ts); a benchmark's burst is more than that in seconds, so it is lifted here,
        // as bench/soak does for the demo. Without it, a 150-message burst stalled at 120.
        spam: { forwardFloorPerHour: 1_000_000 },
      },
    });
    const log = createLogger({ level: 'error' });
    node = new KithNode({ config, passphrase, log });
    await node.start();
    node.engine.onEvent((event) => {
      const w = waiting.get(event.id);
      if (!w) return;
      if (event.kind === 'delivered') w.resolve();
      else if (event.kind === 'failed') w.reject(new Error(`delivery failed: ${event.reason}`));
      else return;
      waiting.delete(event.id);
    });
    return {
      fingerprint: node.identity.fingerprint,
      agentId: node.identity.agentId,
      email: node.identity.email,
      publicKey: node.identity.entityPublicArmored,
      settings: node.mailSettings,
      redisPid: node.redis.private?.pid,
    };
  },
  async invite() {
    return required().links.createInvitation({ ttlMs: 10 * 60_000 });
  },
  async accept(p) {
    await required().links.acceptInvitation(String(p.code));
    return true;
  },
  /** Makes an entity a contact (keys exchanged out of band) without trusting it as a neighbour. */
  async contact(p) {
    await required().trust.addEntity(String(p.publicKey), {
      trusted: false,
      contact: true,
      source: 'fingerprint',
    });
    return true;
  },
  /** One message at a time: milliseconds from engine.send to the "delivered" report, each. */
  async roundTrips(p) {
    const n = required();
    const out: number[] = [];
    for (let i = 0; i < Number(p.count); i++) {
      const id = asMessageId(randomBytes(16).toString('hex'));
      const data = smallMail(n.identity.email, String(p.toEmail), id);
      const t0 = performance.now();
      await engineSend(p.to as Fingerprint, { kind: 'bytes', data }, id);
      out.push(performance.now() - t0);
    }
    return out;
  },
  /** `count` messages with at most `window` in flight: total milliseconds until all are delivered. */
  async throughput(p) {
    const n = required();
    const count = Number(p.count);
    let next = 0;
    const t0 = performance.now();
    const lane = async (): Promise<void> => {
      while (next < count) {
        next++;
        const id = asMessageId(randomBytes(16).toString('hex'));
        await engineSend(
          p.to as Fingerprint,
          { kind: 'bytes', data: smallMail(n.identity.email, String(p.toEmail), id) },
          id,
        );
      }
    };
    await Promise.all(Array.from({ length: Number(p.window) }, lane));
    return performance.now() - t0;
  },
  /**
   * A file payload (as `kith send --file` writes it) through the engine: milliseconds to delivered.
   * `hashFirst`: hash the whole payload before handing it to the engine, as every chunked payload
   * was before manifest version 3 (docs/protocol.md r33) — the old critical path, for a baseline
   * in the same run. `noWait`: return once the engine has it (bench/streams/first-playable.ts).
   */
  async sendFile(p) {
    const n = required();
    const id = asMessageId(p.id === undefined ? randomBytes(16).toString('hex') : String(p.id));
    const dir = join(n.paths.root, 'bench-outgoing');
    await mkdir(dir, { recursive: true });
    const payload = join(dir, id);
    if (p.inPlace) {
      // As `kith send --file` sends a big file since r38: the file where it lies, no copy; timed
      // from before the header and the hard link are made.
      const t0 = performance.now();
      if (p.timed) sentAt = performance.timeOrigin + t0;
      const { source } = await filePayloadInPlace(String(p.path), payload);
      await engineSend(p.to as Fingerprint, source, id);
      const ms = performance.now() - t0;
      await rm(payload, { force: true });
      return p.timed ? { ms, sentAt } : ms;
    }
    const c0 = performance.now();
    await writeFilePayload(String(p.path), payload);
    const copyMs = performance.now() - c0;
    const t0 = performance.now();
    if (p.timed) sentAt = performance.timeOrigin + t0;
    if (p.hashFirst) await hashFile(payload);
    if (p.noWait) {
      await n.engine.send({ id, to: p.to as Fingerprint, source: { kind: 'file', path: payload } });
      return { ms: performance.now() - t0, sentAt, copyMs };
    }
    await engineSend(p.to as Fingerprint, { kind: 'file', path: payload }, id);
    const ms = performance.now() - t0;
    await rm(payload, { force: true });
    return p.timed ? { ms, sentAt } : ms;
  },
  /** The local link of a transfer arriving here, as soon as its first chunk named it. */
  async linkOf(p) {
    const n = required();
    const id = asMessageId(String(p.id));
    for (;;) {
      const url = n.streams.catalog.linkOf(id);
      if (url) return url;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  },
  /**
   * The event loop's busy share since the last call (or since start): what part of the wall
   * time this process spent running JavaScript and native calls on its main thread.
   */
  async loop() {
    const now = perf.eventLoopUtilization();
    const since = lastLoop ? perf.eventLoopUtilization(now, lastLoop) : now;
    lastLoop = now;
    const cpu = process.cpuUsage(lastCpu);
    lastCpu = process.cpuUsage();
    return { utilization: since.utilization, activeMs: since.active, cpuMs: (cpu.user + cpu.system) / 1000 };
  },
  async memory() {
    (globalThis as { gc?: () => void }).gc?.();
    return { peakRss: process.resourceUsage().maxRSS * 1024, ...process.memoryUsage() };
  },
  async stop() {
    await node?.stop();
    node = undefined;
    return true;
  },
};

process.on('message', (msg: Request) => {
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

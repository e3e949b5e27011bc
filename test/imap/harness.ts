import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../../common/logger.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { BlobStore } from '../../store/blobs.ts';
import { Authenticator } from '../../gateway/auth.ts';
import { ensureSelfSignedCertificate, type TlsMaterial } from '../../gateway/tls.ts';
import { createMailStore, type MailStore } from '../../gateway/mailbox/index.ts';
import { createImapServer, type ImapServer } from '../../gateway/imap/index.ts';
import { HANG_MS } from '../helpers/hang.ts';

export const USER = 'alice@example.org';
export const PASS = 'correct horse battery staple';

let cachedTls: TlsMaterial | null = null;

/** A real store + server on 127.0.0.1 port 0 in a temp dir; restart() keeps the data. */
export interface Harness {
  dir: string;
  /** Where the server spools big literals. */
  spool: string;
  store: MailStore;
  server: ImapServer;
  port: number;
  tlsPort: number;
  tls: TlsMaterial;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(
  opts: {
    allowInsecureAuth?: boolean;
    appendLimit?: number;
    maxConnections?: number;
    log?: Logger;
    auth?: { delayPerFailureMs?: number; maxDelayMs?: number; maxConcurrentPerRemote?: number };
  } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'kith-imap-test-'));
  if (!cachedTls) {
    // Kept in memory: the directory is not needed once the pair is made (it was left in /tmp).
    const tlsDir = mkdtempSync(join(tmpdir(), 'kith-tls-'));
    cachedTls = await ensureSelfSignedCertificate(tlsDir);
    rmSync(tlsDir, { recursive: true, force: true });
  }
  const tls = cachedTls;
  const log = opts.log ?? silentLogger();
  const auth = new Authenticator(
    [{ user: USER, password: PASS, fingerprint: 'F'.repeat(40), addresses: [USER] }],
    log,
    { delayPerFailureMs: 50, maxDelayMs: 200, ...opts.auth },
  );
  let db: Db;
  const h = {} as Harness;
  const boot = async (ports: { port: number; tlsPort: number }): Promise<void> => {
    db = openDatabase(join(dir, 'kith.db'));
    const blobs = new BlobStore(join(dir, 'blobs'));
    await blobs.init();
    h.store = createMailStore({ db, blobs, log });
    await h.store.start();
    h.server = createImapServer({
      store: h.store,
      auth,
      tls,
      host: '127.0.0.1',
      port: ports.port,
      tlsPort: ports.tlsPort,
      allowInsecureAuth: opts.allowInsecureAuth ?? true,
      appendLimit: opts.appendLimit ?? 50 * 1024 * 1024,
      maxConnections: opts.maxConnections,
      tmpDir: join(dir, 'spool'),
      log,
    });
    const bound = await h.server.start();
    h.port = bound.port;
    h.tlsPort = bound.tlsPort!;
  };
  const shutdown = async (): Promise<void> => {
    await h.server.stop(2000);
    await h.store.stop();
    db.close();
  };
  mkdirSync(join(dir, 'spool'), { recursive: true });
  Object.assign(h, {
    dir,
    spool: join(dir, 'spool'),
    tls,
    async restart() {
      await shutdown();
      await boot({ port: h.port, tlsPort: h.tlsPort });
    },
    async close() {
      await shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  });
  await boot({ port: 0, tlsPort: 0 });
  return h;
}

/** A log that keeps its records, so tests can check what was (and was not) logged. */
export function capturingLogger(): { log: Logger; logs: Record<string, unknown>[] } {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n'))
        if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), logs };
}

/** A small RFC 5322 message. */
export function sampleMessage(i: number, extra = ''): Buffer {
  return Buffer.from(
    [
      `From: Bob Example <bob@example.net>`,
      `To: Alice <alice@example.org>`,
      `Subject: Test message ${i}`,
      `Date: Mon, 2 Mar 2026 10:00:${String(i % 60).padStart(2, '0')} +0000`,
      `Message-ID: <msg-${i}@example.net>`,
      `Content-Type: text/plain; charset=utf-8`,
      ``,
      `Hello Alice, this is message number ${i}.${extra}`,
      ``,
    ].join('\r\n'),
  );
}

/** A raw IMAP client for scripted sessions: send lines, collect responses up to the tagged one. */
export async function rawSession(port: number): Promise<{
  send(line: string): Promise<string[]>;
  /** Like send, but the whole response text (latin1), blank lines included. */
  sendText(line: string): Promise<string>;
  write(data: string | Buffer): void;
  readUntil(pred: (text: string) => boolean, ms?: number): Promise<string>;
  close(): void;
  greeting: string;
}> {
  const net = await import('node:net');
  const socket = net.connect(port, '127.0.0.1');
  let buffer = '';
  const waiters: (() => void)[] = [];
  socket.on('data', (d) => {
    buffer += d.toString('latin1');
    waiters.splice(0).forEach((w) => w());
  });
  socket.on('error', () => undefined);
  const readUntil = (pred: (text: string) => boolean, ms = HANG_MS): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timeout; got: ${buffer.slice(-500)}`)), ms);
      const check = (): void => {
        if (pred(buffer)) {
          clearTimeout(timer);
          const out = buffer;
          buffer = '';
          resolve(out);
        } else waiters.push(check);
      };
      check();
    });
  const greeting = await readUntil((t) => t.includes('\r\n'));
  let n = 0;
  const session = {
    greeting,
    write: (data: string | Buffer) => socket.write(data),
    readUntil,
    async send(line: string): Promise<string[]> {
      return (await session.sendText(line)).split('\r\n').filter(Boolean);
    },
    async sendText(line: string): Promise<string> {
      const tag = `T${++n}`;
      socket.write(Buffer.from(`${tag} ${line}\r\n`, 'latin1'));
      return readUntil((t) => new RegExp(`(^|\\r\\n)${tag} (OK|NO|BAD)[^\\r\\n]*\\r\\n`).test(t));
    },
    close: () => socket.destroy(),
  };
  return session;
}

// IMAP benchmark: Kith's server vs Dovecot (Debian's dovecot-imapd, run unprivileged from a temp
// dir) on the same 10,000 messages. Prints times and ratios (Kith time / Dovecot time: < 1 = faster).
// Run: node --import tsx bench/imap/run.ts [messages]
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase } from '../../store/db.ts';
import { BlobStore } from '../../store/blobs.ts';
import { Authenticator } from '../../gateway/auth.ts';
import { ensureSelfSignedCertificate } from '../../gateway/tls.ts';
import { createMailStore } from '../../gateway/mailbox/index.ts';
import { createImapServer } from '../../gateway/imap/index.ts';
import { BASELINE_PASS, dovecotMissing, startDovecot as startBaseline } from '../lib/mail-servers.ts';

const COUNT = Number(process.argv[2] ?? 10_000);
const USER = 'bench@example.org';
const PASS = BASELINE_PASS;

// Deterministic messages of varied size and structure (a third multipart with an attachment).
function message(i: number): Buffer {
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
  const body = Array.from(
    { length: 20 + ((i * 37) % 200) },
    (_, k) => words[(i + k * 7) % words.length],
  ).join(' ');
  const subject = i % 100 === 0 ? `needle report ${i}` : `Message ${i} about ${words[i % 10]}`;
  const head = [
    `From: Sender ${i % 50} <sender${i % 50}@example.net>`,
    `To: Bench <${USER}>`,
    `Subject: ${subject}`,
    `Date: Mon, 2 Mar 2026 10:${String(i % 60).padStart(2, '0')}:00 +0000`,
    `Message-ID: <bench-${i}@example.net>`,
    'MIME-Version: 1.0',
  ];
  if (i % 3 === 0) {
    const att = Buffer.alloc(2000 + (i % 5000), i % 251)
      .toString('base64')
      .replace(/.{76}/g, '$&\r\n');
    return Buffer.from(
      [
        ...head,
        'Content-Type: multipart/mixed; boundary="b"',
        '',
        '--b',
        'Content-Type: text/plain; charset=utf-8',
        '',
        body,
        '--b',
        'Content-Type: application/octet-stream; name="data.bin"',
        'Content-Transfer-Encoding: base64',
        '',
        att,
        '--b--',
        '',
      ].join('\r\n'),
    );
  }
  return Buffer.from([...head, 'Content-Type: text/plain; charset=utf-8', '', body, ''].join('\r\n'));
}

/** A minimal pipelining-free IMAP client that only measures: send, read until the tagged reply. */
class RawClient {
  private buf = '';
  private bytes = 0;
  private waiter: (() => void) | null = null;
  private n = 0;
  private constructor(private readonly socket: Socket) {
    socket.setEncoding('latin1');
    // Only the tail is kept (the tagged line is at the end): the client must not be the bottleneck.
    socket.on('data', (d: string) => {
      this.bytes += d.length;
      this.buf = this.buf.length + d.length > 4096 ? (this.buf + d).slice(-4096) : this.buf + d;
      this.waiter?.();
    });
  }
  static async open(port: number): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise((r) => socket.once('connect', r));
    const c = new RawClient(socket);
    await c.until(() => c.buf.includes('\r\n'));
    c.buf = '';
    return c;
  }
  private until(pred: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer in 60 s: ${this.buf.slice(-200)}`)), 60_000);
      const check = (): void => {
        if (pred()) {
          clearTimeout(timer);
          this.waiter = null;
          resolve();
        }
      };
      this.waiter = check;
      check();
    });
  }
  /** Sends one command; resolves to the response size in bytes. Throws on NO/BAD. */
  async cmd(line: string | Buffer): Promise<number> {
    const tag = `BX${++this.n}Q`;
    if (typeof line === 'string') this.socket.write(`${tag} ${line}\r\n`);
    else this.socket.write(Buffer.concat([Buffer.from(`${tag} `), line, Buffer.from('\r\n')]));
    const marker = `${tag} `;
    let status = '';
    this.bytes = 0;
    await this.until(() => {
      const i = this.buf.lastIndexOf(marker);
      if (i < 0 || (i > 0 && this.buf[i - 1] !== '\n')) return false;
      const eol = this.buf.indexOf('\r\n', i);
      if (eol < 0) return false;
      status = this.buf.slice(i + marker.length, eol);
      return true;
    });
    const size = this.bytes;
    this.buf = '';
    if (!status.startsWith('OK')) throw new Error(`${String(line).slice(0, 60)} -> ${status}`);
    return size;
  }
  close(): void {
    this.socket.destroy();
  }
}

async function startKith(dir: string): Promise<{ port: number; stop(): Promise<void> }> {
  const log = silentLogger();
  const db = openDatabase(join(dir, 'kith.db'));
  const blobs = new BlobStore(join(dir, 'blobs'));
  await blobs.init();
  const store = createMailStore({ db, blobs, log });
  await store.start();
  for (let i = 0; i < COUNT; i++) await store.deliver({ raw: message(i) });
  const tls = await ensureSelfSignedCertificate(dir);
  const auth = new Authenticator(
    [{ user: USER, password: PASS, fingerprint: 'F'.repeat(40), addresses: [USER] }],
    log,
  );
  const server = createImapServer({
    store,
    auth,
    tls,
    host: '127.0.0.1',
    port: 0,
    allowInsecureAuth: true,
    appendLimit: 50 << 20,
    log,
  });
  const { port } = await server.start();
  return {
    port,
    async stop() {
      await server.stop();
      await store.stop();
      db.close();
    },
  };
}

async function startDovecot(dir: string): Promise<{ port: number; stop(): Promise<void> }> {
  // Same messages, written straight into the Maildir (Dovecot indexes them on first SELECT, before timing).
  const messages = function* (): Generator<Buffer> {
    for (let i = 0; i < COUNT; i++) yield message(i);
  };
  const server = await startBaseline(dir, { messages: messages() });
  return { port: server.imapPort, stop: () => server.stop() };
}

type Scenario = { name: string; run(c: RawClient): Promise<number>; reps: number };

const SCENARIOS: Scenario[] = [
  {
    name: 'FETCH 1:* headers (UID FLAGS BODY.PEEK[HEADER])',
    reps: 3,
    run: (c) => c.cmd('UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER])'),
  },
  {
    name: 'FETCH 1:* ENVELOPE BODYSTRUCTURE (client list view)',
    reps: 3,
    run: (c) => c.cmd('UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)'),
  },
  { name: 'FETCH 1:* full bodies (BODY.PEEK[])', reps: 3, run: (c) => c.cmd('UID FETCH 1:* (BODY.PEEK[])') },
  {
    name: 'FETCH 200 random single messages',
    reps: 1,
    run: async (c) => {
      let bytes = 0;
      for (let k = 0; k < 200; k++)
        bytes += await c.cmd(`UID FETCH ${1 + ((k * 7919) % COUNT)} (BODY.PEEK[])`);
      return bytes;
    },
  },
  { name: 'SEARCH UNSEEN (flags)', reps: 5, run: (c) => c.cmd('UID SEARCH UNSEEN') },
  { name: 'SEARCH SUBJECT needle (header)', reps: 3, run: (c) => c.cmd('UID SEARCH SUBJECT needle') },
  { name: 'SEARCH FROM sender7 (header)', reps: 3, run: (c) => c.cmd('UID SEARCH FROM sender7') },
  { name: 'SEARCH BODY zulu (full text, no hit)', reps: 2, run: (c) => c.cmd('UID SEARCH BODY zulu') },
  {
    name: 'APPEND 500 messages (one at a time)',
    reps: 1,
    run: async (c) => {
      let bytes = 0;
      for (let k = 0; k < 500; k++) {
        const m = message(COUNT + k);
        bytes += await c.cmd(Buffer.concat([Buffer.from(`APPEND Bench {${m.length}+}\r\n`), m]));
      }
      return bytes;
    },
  },
];

async function measure(port: number, label: string, createBox: boolean): Promise<Map<string, number>> {
  const c = await RawClient.open(port);
  await c.cmd(`LOGIN "${USER}" "${PASS}"`);
  if (createBox) await c.cmd('CREATE Bench').catch(() => 0);
  await c.cmd('SELECT INBOX');
  // Warm-up: Dovecot builds its index and cache here; Kith has nothing to build.
  await c.cmd('UID FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER])');
  const out = new Map<string, number>();
  for (const s of SCENARIOS) {
    const times: number[] = [];
    for (let r = 0; r < s.reps; r++) {
      const t0 = performance.now();
      await s.run(c);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    out.set(s.name, times[Math.floor(times.length / 2)]!);
    process.stderr.write(`  ${label}: ${s.name}: ${times[Math.floor(times.length / 2)]!.toFixed(1)} ms\n`);
  }
  c.close();
  return out;
}

/**
 * What each server answered, read with a real client after the timed runs: a ratio only means
 * something if both servers did the same work (same hits for every SEARCH, same messages).
 */
async function answers(port: number): Promise<Record<string, number>> {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port,
    secure: false,
    doSTARTTLS: false,
    auth: { user: USER, pass: PASS },
    logger: false,
  });
  await client.connect();
  try {
    const out: Record<string, number> = {};
    for (const box of ['INBOX', 'Bench']) {
      const lock = await client.getMailboxLock(box);
      try {
        out[`${box} messages`] = (client.mailbox as { exists: number }).exists;
        if (box !== 'INBOX') continue;
        const search = async (query: object): Promise<number> =>
          ((await client.search(query, { uid: true })) || []).length;
        out['SEARCH UNSEEN'] = await search({ seen: false });
        out['SEARCH SUBJECT needle'] = await search({ subject: 'needle' });
        out['SEARCH FROM sender7'] = await search({ from: 'sender7' });
        out['SEARCH BODY zulu'] = await search({ body: 'zulu' });
        let bytes = 0;
        for await (const m of client.fetch('1:*', { size: true })) bytes += m.size ?? 0;
        out['INBOX RFC822.SIZE total'] = bytes;
      } finally {
        lock.release();
      }
    }
    return out;
  } finally {
    await client.logout();
  }
}

async function main(): Promise<void> {
  const missing = dovecotMissing();
  if (missing) {
    console.error(`baseline not run, no ratio: ${missing}`);
    process.exit(1);
  }
  const root = mkdtempSync(join(tmpdir(), 'kith-imap-bench-'));
  try {
    mkdirSync(join(root, 'kith'));
    mkdirSync(join(root, 'dovecot'));
    console.log(`preparing ${COUNT} messages in each server...`);
    const kith = await startKith(join(root, 'kith'));
    const dove = await startDovecot(join(root, 'dovecot'));
    try {
      const k = await measure(kith.port, 'kith', true);
      const d = await measure(dove.port, 'dovecot', true);
      const [ka, da] = [await answers(kith.port), await answers(dove.port)];
      const differ = Object.keys(ka).filter((key) => ka[key] !== da[key]);
      if (differ.length > 0) {
        for (const key of differ) console.error(`  ${key}: kith ${ka[key]}, dovecot ${da[key]}`);
        throw new Error('the two servers did not do the same work: no ratio printed');
      }
      console.log(`\nboth servers gave the same answers: ${JSON.stringify(ka)}`);
      console.log(
        `\nIMAP on ${COUNT} messages (median ms; ratio = Kith / Dovecot, < 1 means Kith is faster)`,
      );
      console.log('scenario'.padEnd(56) + 'kith'.padStart(10) + 'dovecot'.padStart(10) + 'ratio'.padStart(8));
      for (const s of SCENARIOS) {
        const a = k.get(s.name)!;
        const b = d.get(s.name)!;
        console.log(
          s.name.padEnd(56) +
            a.toFixed(1).padStart(10) +
            b.toFixed(1).padStart(10) +
            (a / b).toFixed(2).padStart(8),
        );
      }
    } finally {
      await kith.stop();
      await dove.stop();
    }
  } finally {
    if (!process.env.KEEP) rmSync(root, { recursive: true, force: true });
  }
}

await main();

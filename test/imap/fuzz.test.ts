import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Duplex } from 'node:stream';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Socket } from 'node:net';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase } from '../../store/db.ts';
import { BlobStore } from '../../store/blobs.ts';
import { createMailStore } from '../../gateway/mailbox/index.ts';
import { Authenticator } from '../../gateway/auth.ts';
import { ImapConnection } from '../../gateway/imap/connection.ts';
import { PASS, USER, rawSession, sampleMessage, startHarness, type Harness } from './harness.ts';
import { HANG_MS } from '../helpers/hang.ts';
import { seededRandom } from '../../agent/sim/graphs.ts';

// A deterministic PRNG (the simulator's mulberry32) so a failure can be replayed.
const rng = seededRandom;

const NAMES = [
  'CAPABILITY',
  'NOOP',
  'CHECK',
  'ID',
  'NAMESPACE',
  'ENABLE',
  'SELECT',
  'EXAMINE',
  'CREATE',
  'DELETE',
  'RENAME',
  'SUBSCRIBE',
  'UNSUBSCRIBE',
  'LIST',
  'LSUB',
  'STATUS',
  'APPEND',
  'IDLE',
  'CLOSE',
  'UNSELECT',
  'EXPUNGE',
  'UID EXPUNGE',
  'SEARCH',
  'UID SEARCH',
  'FETCH',
  'UID FETCH',
  'STORE',
  'UID STORE',
  'COPY',
  'UID COPY',
  'MOVE',
  'UID MOVE',
  'AUTHENTICATE',
  'LOGIN',
  'XYZZY',
  'UID',
  '',
];
const ATOMS = [
  'INBOX',
  'Junk',
  'Trash',
  '1',
  '1:*',
  '*',
  '2,4:6',
  '0',
  '4294967296',
  'FLAGS',
  '+FLAGS.SILENT',
  '-FLAGS',
  '(\\Seen)',
  '(\\Deleted $Junk)',
  'BODY[]',
  'BODY.PEEK[HEADER.FIELDS (From To)]',
  'BODY[1.2.MIME]<0.10>',
  'BODY[TEXT]<5>',
  'ENVELOPE',
  'BODYSTRUCTURE',
  'ALL',
  'FULL',
  '(UID RFC822.SIZE MODSEQ)',
  'CHARSET',
  'UTF-8',
  'OR',
  'NOT',
  'SUBJECT',
  'BODY',
  'TEXT',
  'HEADER',
  'SINCE',
  '1-Jan-2020',
  'LARGER',
  'UID',
  'MODSEQ',
  'RETURN',
  '(MIN MAX COUNT)',
  '(CHANGEDSINCE 1)',
  '(UNCHANGEDSINCE 5)',
  'NIL',
  '""',
  '"quo\\"ted"',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  '%',
  '&Jjo-',
  '"/"',
  '(MESSAGES UIDNEXT UNSEEN)',
  '(SUBSCRIBED)',
  'RETURN (STATUS (MESSAGES))',
  'PLAIN',
  'AGFsaWNlAHB3',
  '=',
  'CONDSTORE',
  'UTF8=ACCEPT',
  '(CONDSTORE)',
  '~{3}',
  'BINARY[1]',
  'RFC822',
];

// Well-formed commands, so mutations start from something that reaches the handlers.
const TEMPLATES = [
  'FETCH 1:4 (FLAGS UID ENVELOPE)',
  'UID FETCH 10:* (BODY.PEEK[HEADER.FIELDS (Subject From)] BODYSTRUCTURE MODSEQ)',
  'FETCH 2 BODY[1]',
  'FETCH 1:3 (BODY[TEXT]<0.10> RFC822.SIZE INTERNALDATE BODY)',
  'FETCH *:5 (UID FLAGS) (CHANGEDSINCE 3)',
  'STORE 1:2 +FLAGS (\\Seen $Junk)',
  'UID STORE 3 (UNCHANGEDSINCE 100) -FLAGS.SILENT (\\Seen)',
  'SEARCH OR SEEN SUBJECT message',
  'UID SEARCH RETURN (MIN MAX COUNT) ALL',
  'SEARCH CHARSET UTF-8 NOT DELETED SINCE 1-Jan-2020 LARGER 10',
  'COPY 1 INBOX',
  'UID MOVE 5 Junk',
  'STORE 1:2 +FLAGS.SILENT (\\Deleted)',
  'EXPUNGE',
  'STATUS INBOX (MESSAGES UIDNEXT UNSEEN HIGHESTMODSEQ)',
  'LIST "" *',
  'LIST (SPECIAL-USE) "" "*" RETURN (STATUS (MESSAGES))',
  'APPEND Drafts (\\Draft) "02-Mar-2026 10:00:00 +0000" {20+}\r\nSubject: x\r\n\r\nbody\r\n',
  'CREATE a/b',
  'RENAME a c',
  'EXAMINE INBOX',
  'UID EXPUNGE 1:5',
];

function generate(r: () => number, n: number): string {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  if (r() < 0.4) return `F${n} ${pick(TEMPLATES)}\r\n`;
  const arg = (depth: number): string => {
    const x = r();
    if (x < 0.55) return pick(ATOMS);
    if (x < 0.7 && depth < 4)
      return '(' + Array.from({ length: Math.floor(r() * 4) }, () => arg(depth + 1)).join(' ') + ')';
    if (x < 0.8) {
      const body = sampleMessage(n)
        .toString('latin1')
        .slice(0, Math.floor(r() * 300));
      return `{${body.length}${r() < 0.5 ? '+' : ''}}\r\n${body}`;
    }
    if (x < 0.9) return String(Math.floor(r() * 1e6));
    return Array.from({ length: Math.floor(r() * 12) }, () =>
      String.fromCharCode(32 + Math.floor(r() * 95)),
    ).join('');
  };
  const args = Array.from({ length: Math.floor(r() * 5) }, () => arg(0)).join(' ');
  return `F${n} ${pick(NAMES)} ${args}\r\n`;
}

function mutate(r: () => number, cmd: string): string {
  const chars = cmd.split('');
  const edits = 1 + Math.floor(r() * 4);
  for (let e = 0; e < edits; e++) {
    const i = Math.floor(r() * (chars.length + 1));
    const op = r();
    const ch =
      r() < 0.2
        ? String.fromCharCode(Math.floor(r() * 256))
        : ' (){}[]"\\*%+\r\n0123456789'[Math.floor(r() * 25)]!;
    if (op < 0.4) chars.splice(i, 1, ch);
    else if (op < 0.7) chars.splice(i, 0, ch);
    else chars.splice(i, 1);
  }
  return chars.join('');
}

// Literal sizes are kept small: a client announcing a 1 GB non-synchronising literal is owed the wait.
function sane(stream: string): string {
  return stream
    .replace(/\{(\d+)(\+?)\}/g, (_m, n: string, plus: string) => `{${Number(n) % 2048}${plus}}`)
    .replace(/LOGOUT/gi, 'NOOP');
}

/** A socket stand-in: counts what the server writes and remembers only the tail. */
class FuzzSocket extends Duplex {
  remoteAddress = '127.0.0.9';
  remotePort = 1;
  tail = '';
  bytes = 0;
  waiter: { marker: string; resolve: () => void } | null = null;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.bytes += chunk.length;
    fetchResponses += (chunk.toString('latin1').match(/^\* \d+ FETCH \(/gm) ?? []).length;
    bigAppends += (chunk.toString('latin1').match(/^B\d+ OK \[APPENDUID /gm) ?? []).length;
    serverBugs += (chunk.toString('latin1').match(/\[SERVERBUG\]/g) ?? []).length;
    this.tail = (this.tail + chunk.toString('latin1')).slice(-400);
    if (this.waiter && this.tail.includes(this.waiter.marker)) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve();
    }
    cb();
  }
  setTimeout(): this {
    return this;
  }
  feed(data: string): void {
    this.emit('data', Buffer.from(data, 'latin1'));
  }
  until(marker: string, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.tail.includes(marker)) return resolve();
      const t = setTimeout(
        () => reject(new Error(`no "${marker}" within ${ms} ms; tail: ${JSON.stringify(this.tail)}`)),
        ms,
      );
      this.waiter = {
        marker,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      };
    });
  }
}

let h: Harness;
// Internal errors answered as NO [SERVERBUG]: each is a handler that threw something unplanned.
let serverBugs = 0;
// Proof the fuzz reaches the selected state and real work, not only BAD answers.
let fetchResponses = 0;
// APPENDs whose literal was past the spill threshold (256 KiB) and went through a file.
let bigAppends = 0;
const BIG = 300_000;

// An APPEND with a literal past the spill threshold: `size` bytes announced, `send` of them sent.
function bigAppend(tag: string, plus: string, send = BIG): string {
  const head = 'Subject: big\r\n\r\n';
  const body = head + ('z'.repeat(98) + '\r\n').repeat(Math.ceil(BIG / 100));
  return `${tag} APPEND INBOX {${BIG}${plus}}\r\n${body.slice(0, send)}`;
}

function spilled(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith('lit-'));
}
let tmp: string;
beforeAll(async () => {
  h = await startHarness({ appendLimit: 64 * 1024 });
  tmp = mkdtempSync(join(tmpdir(), 'kith-fuzz-'));
  for (let i = 0; i < 20; i++) await h.store.deliver({ raw: sampleMessage(i) });
});
afterAll(async () => {
  await h.close();
  rmSync(tmp, { recursive: true, force: true });
});

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('fuzzing the parser and dispatcher', () => {
  test('100,000+ generated and mutated commands: no crash, no hang, bounded memory', async () => {
    const log = silentLogger();
    const auth = new Authenticator(
      [{ user: USER, password: PASS, fingerprint: 'F'.repeat(40), addresses: [USER] }],
      log,
      {
        delayPerFailureMs: 0,
        maxDelayMs: 0,
      },
    );
    const secureContext = createSecureContext({ key: h.tls.key, cert: h.tls.cert });
    // The parser and dispatcher are under test, not fsync: an in-memory database keeps this fast.
    const memDb = openDatabase(':memory:');
    const blobs = new BlobStore(join(tmp, 'blobs'));
    await blobs.init();
    const memStore = createMailStore({ db: memDb, blobs, log });
    await memStore.start();
    for (let i = 0; i < 20; i++) await memStore.deliver({ raw: sampleMessage(i) });
    const r = rng(20260302);
    let sent = 0;
    let heapAfterWarmup = 0;
    let externalAfterWarmup = 0;
    let buffersAfterWarmup = 0;
    let spillsSeen = 0;
    const BATCH = 500;
    const TOTAL = 100_000;
    let batchNo = 0;
    while (sent < TOTAL) {
      const sock = new FuzzSocket();
      const conn = new ImapConnection(sock as unknown as Socket, {
        store: memStore,
        auth,
        log,
        options: { allowInsecureAuth: true, appendLimit: 1024 * 1024 },
        secureContext,
        tmpDir: tmp,
        secure: false,
        onClose: () => undefined,
      });
      sock.feed(`L1 LOGIN "${USER}" "${PASS}"\r\nL2 SELECT INBOX\r\n`);
      let stream = '';
      for (let i = 0; i < BATCH; i++, sent++) {
        const cmd = generate(r, sent);
        stream += r() < 0.5 ? cmd : mutate(r, cmd);
        // Random commands often leave the selected state; get back so selected-state commands run too.
        if (i % 10 === 9) stream += `\r\nS${i} SELECT INBOX\r\n`;
      }
      // Whatever state the stream left, this line ends any literal, IDLE or AUTHENTICATE in progress.
      // Whatever the stream left pending (a literal owed, IDLE, AUTHENTICATE, a half line), the
      // filler pays it: literals are at most 2047 bytes, and the filler has eight lines longer than that.
      // Every tenth batch starts with an APPEND whose literal spills to disk (both literal kinds).
      const big = batchNo % 10 === 5 ? bigAppend(`B${batchNo}`, batchNo % 20 === 5 ? '+' : '') + '\r\n' : '';
      sock.feed(big + sane(stream) + ('x'.repeat(2100) + '\r\n').repeat(8) + 'Z0 NOOP\r\n');
      const answered = await sock.until('Z0 OK', HANG_MS).then(
        () => true,
        () => false,
      );
      expect([batchNo, answered]).toEqual([batchNo, true]);
      if (big) {
        // A spilled literal cut off by the connection going away: its file must go too.
        sock.feed(bigAppend('H1', '+', BIG / 2));
        for (let i = 0; i < 100 && spilled(tmp).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
        expect(spilled(tmp)).toHaveLength(1);
        spillsSeen++;
      }
      sock.emit('close');
      void conn;
      batchNo++;
      if (batchNo === 40) {
        gc();
        const m = process.memoryUsage();
        heapAfterWarmup = m.heapUsed;
        externalAfterWarmup = m.external;
        buffersAfterWarmup = m.arrayBuffers;
      }
    }
    gc();
    const m = process.memoryUsage();
    expect(sent).toBeGreaterThanOrEqual(TOTAL);
    expect(serverBugs).toBe(0);
    expect(fetchResponses).toBeGreaterThan(100);
    // Buffers (literals, socket chunks) live outside the JS heap: external and arrayBuffers count too.
    expect(m.heapUsed - heapAfterWarmup).toBeLessThan(30 * 1024 * 1024);
    expect(m.external - externalAfterWarmup).toBeLessThan(16 * 1024 * 1024);
    expect(m.arrayBuffers - buffersAfterWarmup).toBeLessThan(16 * 1024 * 1024);
    // Spilled literals never outlive their command or connection (and some did spill).
    expect(bigAppends).toBe(20);
    expect(spillsSeen).toBe(20);
    expect(readdirSync(tmp).filter((f) => f !== 'blobs')).toEqual([]);
    await memStore.stop();
    memDb.close();
    // A hang detector, not a speed check: ~20 s on a quiet 2-core machine, over 120 s at load 25.
  }, 600_000);

  test('a batch over a real socket, and the server still answers afterwards', async () => {
    const r = rng(7);
    const s = await rawSession(h.port);
    await s.send(`LOGIN "${USER}" "${PASS}"`);
    await s.send('SELECT INBOX');
    let stream = '';
    for (let i = 0; i < 2000; i++) stream += r() < 0.5 ? generate(r, i) : mutate(r, generate(r, i));
    s.write(Buffer.from(sane(stream) + ('x'.repeat(2100) + '\r\n').repeat(8), 'latin1'));
    const reply = await s.sendText('NOOP');
    expect(reply).toMatch(/T\d+ OK/);
    s.close();
    const fresh = await rawSession(h.port);
    expect((await fresh.send(`LOGIN "${USER}" "${PASS}"`)).at(-1)).toMatch(/OK/);
    fresh.close();
  });

  test('over-long lines, deep nesting and oversized literals get BAD/NO, the session goes on', async () => {
    const s = await rawSession(h.port);
    await s.send(`LOGIN "${USER}" "${PASS}"`);
    expect((await s.send('NOOP ' + 'x'.repeat(100_000))).at(-1)).toMatch(/BAD line too long/);
    expect((await s.send('LIST ' + '('.repeat(100) + ')'.repeat(100) + ' ""')).at(-1)).toMatch(/BAD/);
    expect((await s.send('APPEND INBOX {100000}')).at(-1)).toMatch(/NO \[TOOBIG\]/);
    expect((await s.send('LOGIN {100000}')).at(-1)).toMatch(/BAD|NO/);
    expect((await s.send('NOOP')).at(-1)).toMatch(/OK/);
    s.close();
  });
});

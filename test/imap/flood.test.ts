import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { connect, type Socket } from 'node:net';
import { PASS, USER, rawSession, startHarness, type Harness } from './harness.ts';
import { HANG_MS } from '../helpers/hang.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ appendLimit: 100 * 1024 * 1024, maxConnections: 3 });
});
afterAll(async () => {
  await h.close();
});

const MIB = 1024 * 1024;

/** A message of about `size` bytes: headers, then 78-byte lines. */
function bigMessage(i: number, size: number): Buffer {
  const head = `From: bob@example.net\r\nSubject: big ${i}\r\n\r\n`;
  const line = 'x'.repeat(76) + '\r\n';
  return Buffer.from(head + line.repeat(Math.ceil(size / line.length)), 'latin1');
}

/** A client socket that keeps what it receives and only reads when told to. */
function client(port: number): Promise<{
  socket: Socket;
  text(): string;
  until(re: RegExp, ms?: number): Promise<void>;
}> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received: Buffer[] = [];
    let tail = '';
    const waiters = new Set<() => void>();
    socket.on('data', (d) => {
      received.push(d);
      tail = (tail + d.toString('latin1')).slice(-4096);
      for (const w of waiters) w();
    });
    socket.on('error', () => undefined);
    const c = {
      socket,
      text: () => {
        const t = Buffer.concat(received).toString('latin1');
        received = [];
        return t;
      },
      until: (re: RegExp, ms = HANG_MS) =>
        new Promise<void>((res, rej) => {
          const timer = setTimeout(() => rej(new Error(`timeout waiting for ${re}; got ${tail}`)), ms);
          const check = (): void => {
            if (re.test(tail)) {
              clearTimeout(timer);
              waiters.delete(check);
              res();
            }
          };
          waiters.add(check);
          check();
        }),
    };
    socket.once('connect', () => resolve(c));
  });
}

describe('a client that writes without reading', () => {
  test('server-side buffers stay bounded, and the session works afterwards', async () => {
    for (let i = 0; i < 12; i++) await h.store.deliver({ raw: bigMessage(i, MIB) });
    const c = await client(h.port);
    await c.until(/\* OK .*\r\n/);
    c.socket.write(`a LOGIN "${USER}" "${PASS}"\r\nb SELECT INBOX\r\n`);
    await c.until(/b OK [^\r\n]*\r\n/);
    c.text();
    // Ask for 12 MiB and stop reading; then stream a 32 MiB LITERAL+ APPEND behind it.
    c.socket.pause();
    const literal = bigMessage(99, 32 * MIB);
    c.socket.write(`c FETCH 1:* BODY.PEEK[]\r\nd APPEND INBOX {${literal.length}+}\r\n`);
    let sent = 0;
    // Write while the server takes it; a write that does not drain for 500 ms means it stopped.
    const writeSome = async (): Promise<boolean> => {
      while (sent < literal.length) {
        const piece = literal.subarray(sent, sent + 64 * 1024);
        sent += piece.length;
        if (!c.socket.write(piece)) {
          const drained = await new Promise<boolean>((res) => {
            const t = setTimeout(() => res(false), 500);
            c.socket.once('drain', () => {
              clearTimeout(t);
              res(true);
            });
          });
          if (!drained) return false;
        }
      }
      return true;
    };
    expect(await writeSome()).toBe(false);
    expect(sent).toBeLessThan(literal.length);
    const stats = h.server.stats();
    // Input: at most the 1 MiB bound plus one socket read; output: about 1 MiB of FETCH at a time
    // (before, the whole flood and every fetched body were held: ~32 MiB + 12 MiB).
    expect(stats.maxBufferedInput).toBeLessThan(1.5 * MIB);
    expect(stats.maxBufferedOutput).toBeLessThan(3 * MIB);

    // Now read: the FETCH completes, the server reads on, the APPEND arrives whole.
    c.socket.resume();
    const finished = c.until(/d (OK|NO|BAD)[^\r\n]*\r\n/);
    await new Promise<void>((res) => {
      const drain = (): void => {
        void writeSome().then((done) => (done ? res() : drain()));
      };
      c.socket.once('drain', drain);
    });
    c.socket.write('\r\n');
    await finished;
    const all = c.text();
    expect(all).toContain('c OK FETCH completed');
    expect(all.match(/^\* \d+ FETCH /gm)).toHaveLength(12);
    expect(all).toMatch(/d OK \[APPENDUID \d+ 13\] /);
    c.socket.write('e UID FETCH 13 (RFC822.SIZE)\r\n');
    await c.until(/e OK [^\r\n]*\r\n/);
    expect(c.text()).toContain(`* 13 FETCH (UID 13 RFC822.SIZE ${literal.length})`);
    expect(h.server.stats().maxBufferedInput).toBeLessThan(1.5 * MIB);
    c.socket.destroy();
  });

  test('connections past maxConnections get BYE', async () => {
    while (h.server.stats().connections > 0) await new Promise((r) => setTimeout(r, 20));
    const open = [await rawSession(h.port), await rawSession(h.port), await rawSession(h.port)];
    const extra = await client(h.port);
    await extra.until(/\r\n/);
    expect(extra.text()).toBe('* BYE too many connections\r\n');
    await new Promise((r) => extra.socket.once('close', r));
    expect(h.server.stats().refused).toBe(1);
    open.pop()!.close();
    // The server counts the closed session out when it sees the close: wait for that, not 100 ms.
    while (h.server.stats().connections >= 3) await new Promise((r) => setTimeout(r, 20));
    const again = await rawSession(h.port);
    expect(again.greeting).toMatch(/^\* OK /);
    for (const s of [...open, again]) s.close();
  });
});

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ALICE, aliceMessage, startHarness, type Harness } from './harness.ts';
import { RawSmtp } from './raw-client.ts';

// Each bad message gets its own reply code and a sentence; the session stays usable and the
// next good message goes out; nothing half-written is left behind.
describe('bad input', () => {
  let h: Harness;
  let c: RawSmtp;
  beforeAll(async () => {
    h = await startHarness({
      maxMessageBytes: 256 * 1024,
      headerLimits: { maxHeaderBytes: 16 * 1024, maxHeaderFields: 100 },
    });
    c = (await RawSmtp.connect(h.port)).client;
    expect((await c.login(ALICE.user, ALICE.password)).code).toBe(235);
  });
  afterAll(async () => {
    c.close();
    await h.stop();
  });

  /** Messages answered 250 in this file: each must have left exactly one submission and one blob. */
  let accepted = 0;

  async function send(payload: string | Buffer, options: { smtputf8?: boolean } = {}) {
    expect(
      (await c.command(`MAIL FROM:<alice@example.org>${options.smtputf8 ? ' SMTPUTF8' : ''}`)).code,
    ).toBe(250);
    expect((await c.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    const reply = await c.data(payload);
    if (reply.code === 250) accepted += 1;
    return reply;
  }

  /** A message whose header section (up to and including its empty line) is exactly `bytes` long. */
  function headerOfSize(bytes: number): string {
    const start = 'From: alice@example.org\r\nTo: bob@example.org\r\nSubject: exact size\r\nX-Pad: x';
    let header = start;
    // folded continuation lines of at most 900 characters, then one to make up the rest
    while (bytes - (header.length + 4) > 903) header += `\r\n ${'p'.repeat(900)}`;
    const rest = bytes - (header.length + 4) - 3;
    header += `\r\n ${'q'.repeat(rest)}\r\n\r\n`;
    expect(Buffer.byteLength(header)).toBe(bytes);
    return `${header}body\r\n`;
  }

  async function outboxCount() {
    return (await h.delivery.outbox()).length;
  }

  async function stillWorks() {
    const r = await send(aliceMessage({ subject: `good ${Math.random()}` }));
    expect(r.code).toBe(250);
    expect(await readdir(join(h.dir, 'blobs', 'tmp'))).toEqual([]);
  }

  test('bare LF line endings: 554 5.6.0 saying lines must end with CRLF', async () => {
    const before = await outboxCount();
    const r = await send('From: alice@example.org\nTo: bob@example.org\nSubject: unix\n\nbody\n');
    expect([r.code, r.enhanced]).toEqual([554, '5.6.0']);
    expect(r.text).toContain('CRLF');
    // a bare LF deep in the body is caught as well
    const body = await send(aliceMessage({ body: `${'fine line\r\n'.repeat(5000)}oops\nmore\r\n` }));
    expect([body.code, body.enhanced]).toEqual([554, '5.6.0']);
    expect(await outboxCount()).toBe(before);
    await stillWorks();
  });

  test('8-bit headers: UTF-8 is carried as is, other 8-bit bytes get 554 5.6.0', async () => {
    const utf8 = await send(aliceMessage({ subject: 'Grüße 🌍' }), { smtputf8: true });
    expect(utf8.code).toBe(250);
    const copy = (await h.delivery.outbox()).at(-1)!;
    expect(copy.raw.toString('utf8')).toContain('Subject: Grüße 🌍');
    const latin1 = Buffer.concat([
      Buffer.from('From: alice@example.org\r\nTo: bob@example.org\r\nSubject: Gr'),
      Buffer.from([0xfc, 0xdf, 0x65]),
      Buffer.from('\r\n\r\nbody\r\n'),
    ]);
    const r = await send(latin1);
    expect([r.code, r.enhanced]).toEqual([554, '5.6.0']);
    expect(r.text).toContain('not UTF-8');
    await stillWorks();
  });

  test('header floods: too many fields or too large a header section get 552 5.3.4', async () => {
    const many = aliceMessage({ extraHeaders: Array.from({ length: 150 }, (_, i) => `X-Flood-${i}: x`) });
    const r1 = await send(many);
    expect([r1.code, r1.enhanced]).toEqual([552, '5.3.4']);
    expect(r1.text).toContain('header fields');
    const huge = aliceMessage({
      extraHeaders: [
        `X-Long: ${'a'.repeat(900)}`,
        ...Array.from({ length: 40 }, () => ` ${'b'.repeat(900)}`),
      ],
    });
    const r2 = await send(huge);
    expect([r2.code, r2.enhanced]).toEqual([552, '5.3.4']);
    expect(r2.text).toContain('header section is larger');
    await stillWorks();
  });

  test('the header byte limit holds exactly: 16384 bytes go, 16385 do not, even in one write', async () => {
    expect((await send(headerOfSize(16 * 1024))).code).toBe(250);
    const over = await send(headerOfSize(16 * 1024 + 1));
    expect([over.code, over.enhanced]).toEqual([552, '5.3.4']);
    expect(over.text).toContain('header section is larger than 16384 bytes');
    // a header far past the limit that ends in the same chunk it crosses the limit in
    const far = await send(headerOfSize(40 * 1024));
    expect([far.code, far.enhanced]).toEqual([552, '5.3.4']);
    await stillWorks();
  });

  test('NUL and bare CR in the header: 554 5.6.0 naming the line', async () => {
    const before = await outboxCount();
    const nul = await send('From: alice@example.org\r\nTo: bob@example.org\r\nSubject: a\0b\r\n\r\nbody\r\n');
    expect([nul.code, nul.enhanced]).toEqual([554, '5.6.0']);
    expect(nul.text).toContain('NUL byte (header line 3)');
    // a bare CR: some readers start a new field there (X-Kith-Sender after it, say), others do not
    const cr = await send(
      'From: alice@example.org\r\nSubject: hi\rX-Injected: yes\r\nTo: bob@example.org\r\n\r\nbody\r\n',
    );
    expect([cr.code, cr.enhanced]).toEqual([554, '5.6.0']);
    expect(cr.text).toContain('CR that does not end a line (header line 2)');
    expect(await outboxCount()).toBe(before);
    await stillWorks();
  });

  test('malformed header lines are refused; malformed MIME bodies go out byte for byte', async () => {
    const r = await send(
      'From: alice@example.org\r\nTo: bob@example.org\r\nthis is not a header\r\n\r\nbody\r\n',
    );
    expect([r.code, r.enhanced]).toEqual([554, '5.6.0']);
    expect(r.text).toContain('header line 3');
    const noFrom = await send('To: bob@example.org\r\nSubject: who?\r\n\r\nbody\r\n');
    expect([noFrom.code, noFrom.enhanced]).toEqual([554, '5.6.0']);
    expect(noFrom.text).toContain('no From: header');
    // A broken MIME structure is the reader's problem, not a reason to lose the message:
    // unterminated multipart, a part without headers, a bogus transfer encoding.
    const broken = [
      'From: alice@example.org',
      'To: bob@example.org',
      'Subject: broken mime',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="never-closed"',
      '',
      '--never-closed',
      'Content-Transfer-Encoding: x-made-up',
      '',
      '=?= not really =ZZ',
      '--never-closed',
      'Content-Type: multipart/alternative',
      '',
      'no boundary parameter at all',
      '',
    ].join('\r\n');
    expect((await send(broken)).code).toBe(250);
    const copy = (await h.delivery.outbox()).at(-1)!;
    expect(copy.raw.equals(Buffer.from(broken))).toBe(true);
  });

  test('oversized: SIZE= too big is refused at MAIL FROM, and a message that grows past the limit gets 552', async () => {
    const early = await c.command(`MAIL FROM:<alice@example.org> SIZE=${1024 * 1024}`);
    expect([early.code, early.enhanced]).toEqual([552, '5.3.4']);
    const before = await outboxCount();
    const big = aliceMessage({ body: `${'z'.repeat(998)}\r\n`.repeat(400) });
    const r = await send(big);
    expect([r.code, r.enhanced]).toEqual([552, '5.3.4']);
    expect(r.text).toContain('262144 bytes');
    expect(await outboxCount()).toBe(before);
    await stillWorks();
  });

  test('every refused message left a clear log line, no submission row and no blob file', async () => {
    const refused = h.logs.filter((l) => l.msg === 'smtp message refused');
    expect(refused.length).toBeGreaterThanOrEqual(8);
    const submissions = h.submissions.list(1000);
    expect(submissions).toHaveLength(accepted);
    expect(submissions.every((s) => s.state === 'accepted')).toBe(true);
    // blob files: exactly those of the accepted messages (a refused message's bytes are gone)
    const files: string[] = [];
    for (const sub of await readdir(join(h.dir, 'blobs'))) {
      if (/^[0-9a-f]{2}$/.test(sub)) files.push(...(await readdir(join(h.dir, 'blobs', sub))));
    }
    expect(new Set(files)).toEqual(new Set(submissions.map((s) => s.blob)));
    expect(await readdir(join(h.dir, 'blobs', 'tmp'))).toEqual([]);
  });
});

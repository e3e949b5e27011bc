import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { ALICE, BOB_FPR, CAROL_FPR, aliceMessage, startHarness, type Harness } from './harness.ts';

const run = promisify(execFile);

// Real mail clients submit through STARTTLS + AUTH; the agent receives the bytes unchanged.
describe('real clients submit through the gateway', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.stop();
  });

  test('python3 smtplib: STARTTLS with a verified certificate, AUTH, DSN options; one copy per recipient', async () => {
    const message = aliceMessage({ to: 'bob@example.org, carol@example.net', subject: 'from smtplib' });
    const file = join(h.dir, 'py.eml');
    await writeFile(file, message);
    const { stdout } = await run('python3', [
      join(import.meta.dirname, 'smtplib_submit.py'),
      String(h.port),
      h.certFile,
      ALICE.user,
      ALICE.password,
      'alice@example.org',
      file,
      'bob@example.org',
      'carol@example.net',
    ]);
    expect(JSON.parse(stdout)).toEqual({ refused: {}, error: null });
    const outbox = (await h.delivery.outbox()).filter((m) => m.raw.includes('from smtplib'));
    expect(outbox.map((m) => m.to).sort()).toEqual([BOB_FPR, CAROL_FPR].sort());
    for (const copy of outbox) {
      expect(copy.raw.toString()).toBe(message.endsWith('\r\n') ? message : `${message}\r\n`);
      expect(copy.from).toBe(ALICE.fingerprint);
    }
    const [submission] = h.submissions.list(1);
    expect(submission).toMatchObject({
      state: 'accepted',
      envid: 'py-1',
      ret: 'HDRS',
      subject: 'from smtplib',
    });
    expect(submission.recipients.map((r) => r.notify)).toEqual([
      ['SUCCESS', 'FAILURE'],
      ['SUCCESS', 'FAILURE'],
    ]);
  });

  test('swaks: STARTTLS, AUTH LOGIN, an 8-bit UTF-8 body and a 300 KB attachment arrive byte for byte', async () => {
    const attachment = Buffer.alloc(300 * 1024, 'kith ')
      .toString('base64')
      .replace(/.{76}/g, '$&\r\n');
    const message = [
      'From: alice@example.org',
      'To: bob@example.org',
      'Subject: from swaks',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Grüße aus Köln — ☕',
      '.a line that starts with a dot',
      '--b1',
      'Content-Type: application/octet-stream; name="big.bin"',
      'Content-Transfer-Encoding: base64',
      '',
      attachment,
      '--b1--',
      '',
    ].join('\r\n');
    const file = join(h.dir, 'swaks.eml');
    await writeFile(file, message);
    const { stdout } = await run('swaks', [
      '--server',
      `127.0.0.1:${h.port}`,
      '--tls',
      '--auth',
      'LOGIN',
      '--auth-user',
      ALICE.user,
      '--auth-password',
      ALICE.password,
      '--from',
      'alice@example.org',
      '--to',
      'bob@example.org',
      '--data',
      `@${file}`,
      '--suppress-data',
    ]);
    expect(stdout).toMatch(/<~ +250 2\.6\.0 queued as [0-9a-f]{32}/);
    // the server offered AUTH only inside TLS: no cleartext reply line (<-) names it
    const cleartext = stdout.split('\n').filter((l) => l.startsWith('<- '));
    expect(cleartext.some((l) => l.includes('STARTTLS'))).toBe(true);
    expect(cleartext.filter((l) => /\bAUTH\b/.test(l))).toEqual([]);
    expect(stdout).toMatch(/<~ +250-AUTH PLAIN LOGIN/);
    const copy = (await h.delivery.outbox()).find((m) => m.raw.includes('from swaks'));
    // swaks always ends DATA with its own CRLF before the dot: that line is part of what it sent
    const sent = Buffer.from(`${message}\r\n`);
    expect(copy?.raw.equals(sent)).toBe(true);
    expect(copy?.size).toBe(sent.length);
  });

  test('swaks without STARTTLS: the server offers no AUTH, so no password goes out in the clear', async () => {
    const result = await run('swaks', [
      '--server',
      `127.0.0.1:${h.port}`,
      '--auth',
      'PLAIN',
      '--auth-user',
      ALICE.user,
      '--auth-password',
      ALICE.password,
      '--from',
      'alice@example.org',
      '--to',
      'bob@example.org',
      '--suppress-data',
    ]).then(
      () => ({ failed: false, stdout: '', stderr: '' }),
      (err: { stdout: string; stderr: string }) => ({ failed: true, stdout: err.stdout, stderr: err.stderr }),
    );
    expect(result.failed).toBe(true);
    expect(result.stderr).toMatch(/did not advertise authentication/i);
    expect(result.stdout).toContain('250-STARTTLS');
    expect(result.stdout).not.toMatch(/\bAUTH\b/);
  });

  test('nodemailer: requireTLS with the certificate pinned, AUTH PLAIN, DSN; a refused recipient does not stop the others', async () => {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: h.port,
      secure: false,
      requireTLS: true,
      tls: { ca: [h.tls.cert], servername: 'localhost' },
      auth: { user: ALICE.user, pass: ALICE.password, method: 'PLAIN' },
    });
    try {
      const info = await transport.sendMail({
        from: 'Alice <alice@home.example>',
        to: ['bob@example.org', 'nobody@example.org'],
        subject: 'from nodemailer',
        text: 'hello',
        dsn: { id: 'nm-1', return: 'full', notify: ['failure', 'delay'], recipient: 'alice@home.example' },
      });
      expect(info.accepted).toEqual(['bob@example.org']);
      expect(info.rejected).toEqual(['nobody@example.org']);
      expect(info.response).toMatch(/^250 2\.6\.0 queued as/);
    } finally {
      transport.close();
    }
    const copies = (await h.delivery.outbox()).filter((m) => m.raw.includes('from nodemailer'));
    expect(copies.map((m) => m.to)).toEqual([BOB_FPR]);
    const [submission] = h.submissions.list(1);
    expect(submission).toMatchObject({ envid: 'nm-1', ret: 'FULL', mailFrom: 'alice@home.example' });
    expect(submission.recipients[0]).toMatchObject({
      address: 'bob@example.org',
      notify: ['FAILURE', 'DELAY'],
    });
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { simpleParser } from 'mailparser';
import {
  line,
  mailbox,
  messagesContaining,
  progress,
  startAgents,
  until,
  type TestNetwork,
  closeAgents,
  START_BOUND_MS,
  STOP_BOUND_MS,
} from '../agents/network.ts';

const run = promisify(execFile);

// A read receipt (RFC 8098) as Thunderbird sends it: multipart/report with
// report-type=disposition-notification, from the null sender. It travels as ordinary mail.
const SUBMIT = `
import smtplib, ssl, sys
port, user, password, to = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
message = sys.stdin.buffer.read()
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP('127.0.0.1', port) as s:
    s.starttls(context=ctx); s.login(user, password)
    print(s.sendmail('', [to], message))
`;

function receipt(from: string, to: string): Buffer {
  return Buffer.from(
    [
      `From: A <${from}>`,
      `To: ${to}`,
      'Subject: Read: Lunch?',
      'Message-ID: <mdn-1@demo.kith>',
      'Date: Tue, 01 Jul 2025 12:00:00 +0000',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=disposition-notification;',
      '\tboundary="mdn-boundary"',
      '',
      '--mdn-boundary',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'The message sent on Tue, 01 Jul 2025 11:00 to you with subject "Lunch?" has been displayed.',
      '',
      '--mdn-boundary',
      'Content-Type: message/disposition-notification',
      '',
      'Reporting-UA: a.demo.kith; Thunderbird',
      `Final-Recipient: rfc822;${from}`,
      'Original-Message-ID: <lunch@demo.kith>',
      'Disposition: manual-action/MDN-sent-manually; displayed',
      '',
      '--mdn-boundary--',
      '',
    ].join('\r\n'),
  );
}

describe('read receipts (RFC 8098) travel as normal mail', () => {
  let net: TestNetwork;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b']));
  }, START_BOUND_MS);
  afterAll(closeAgents, STOP_BOUND_MS);

  it('a client submits an MDN from MAIL FROM:<>; it reaches the recipient INBOX byte for byte, once', async () => {
    const [a, b] = ['a', 'b'].map((n) => net.agent(n).node);
    const s = a.mailSettings;
    const mdn = receipt(a.identity.email, b.identity.email);
    const child = run('python3', ['-c', SUBMIT, String(s.smtp.port), s.user, s.pass, b.identity.email]);
    child.child.stdin!.end(mdn);
    const { stdout } = await child;
    expect(stdout.trim()).toBe('{}'); // no recipient refused

    const [stored] = await until(async () => {
      const found = await messagesContaining(b, 'Subject: Read: Lunch?');
      return found.length > 0 ? found : undefined;
    }, 'the receipt in B’s INBOX');
    // the gateway only puts its own fields on top; everything the client wrote follows unchanged
    expect(stored.subarray(stored.length - mdn.length).equals(mdn)).toBe(true);
    const parsed = await simpleParser(stored, { keepDeliveryStatus: true });
    expect(parsed.headers.get('content-type')).toMatchObject({
      value: 'multipart/report',
      params: { 'report-type': 'disposition-notification' },
    });
    expect(parsed.headers.get('authentication-results')).toMatch(
      /^kith; kith=pass header\.from=a@demo\.kith/,
    );
    const notification = parsed.attachments.find((p) => p.contentType === 'message/disposition-notification');
    expect(notification?.content.toString()).toContain(
      'Disposition: manual-action/MDN-sent-manually; displayed',
    );

    // the null sender gets no status email back (a receipt for a receipt could loop)
    const id = a.outbox.recent(1)[0].id;
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered');
    await new Promise((r) => setTimeout(r, 1000));
    expect(await messagesContaining(b, 'Subject: Read: Lunch?')).toHaveLength(1);
    expect((await mailbox(a)).filter((m) => m.includes('Read: Lunch?'))).toEqual([]);
  });
});

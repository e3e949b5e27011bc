import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { asFingerprint, asMessageId } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import { BlobStore } from '../../store/blobs.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import type { GatewaySink, InboundMessage } from '../../gateway/delivery.ts';
import { prepareInbound } from '../../gateway/inbound.ts';
import { createGatewaySink } from '../../gateway/status/index.ts';
import { createSubmissionStore } from '../../gateway/submissions.ts';
import { openInbox } from './inbox.ts';

const BOB = asFingerprint('B0B0'.repeat(10));

const FORGED = [
  'Authentication-Results: kith; kith=pass header.from=bob@example.org',
  '  policy.entity=B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0',
  'X-Kith-Sender: Bob <bob@example.org> verified key B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0',
  'Authentication-Results: mx.example.org; dkim=pass header.d=example.org',
];

function incoming(options: { verified: boolean; from?: string; forged?: boolean }): InboundMessage {
  const raw = [
    ...(options.forged ? FORGED : []),
    `From: Bob <${options.from ?? 'bob@example.org'}>`,
    'To: alice@example.org',
    'Subject: Hi Alice',
    'Message-ID: <bob-1@example.org>',
    '',
    'Body stays byte for byte.\r\n\r\n-- \r\nBob\r\n',
  ].join('\r\n');
  return {
    // A fresh id each time: the sink stores a Kith message id only once.
    id: asMessageId(randomBytes(16).toString('hex')),
    raw: Buffer.from(raw),
    sender: { fingerprint: BOB, email: 'bob@example.org', name: 'Bob' },
    verified: options.verified,
    receivedAt: new Date('2025-07-02T08:00:00Z'),
  };
}

describe('incoming mail is stored with the verified sender stated', () => {
  let dir: string;
  let db: Db;
  let sink: GatewaySink;
  let inbox: Awaited<ReturnType<typeof openInbox>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kith-inbound-'));
    db = openDatabase(join(dir, 'kith.db'));
    const blobs = new BlobStore(join(dir, 'blobs'));
    await blobs.init();
    inbox = await openInbox(db, blobs, silentLogger());
    sink = createGatewaySink({
      store: inbox.drop,
      submissions: createSubmissionStore(db),
      blobs,
      composer: {
        from: 'Kith <postmaster@kith>',
        reportingMta: 'kith',
        maxAgeMs: 1,
        maxReturnBytes: 1,
        alwaysReportDelivery: true,
      },
      log: silentLogger(),
    });
  });
  afterAll(async () => {
    await inbox.stop();
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function receiveAndRead(message: InboundMessage) {
    await sink.receive(message);
    const all = await inbox.messages();
    const raw = all[all.length - 1];
    return { raw, mail: await simpleParser(raw) };
  }

  test('verified: Authentication-Results says pass and names the entity; the message follows unchanged', async () => {
    const message = incoming({ verified: true });
    const { raw, mail } = await receiveAndRead(message);
    expect(mail.headers.get('authentication-results')).toBe(
      `kith; kith=pass header.from=bob@example.org policy.entity=${BOB}`,
    );
    expect(mail.headers.get('x-kith-sender')).toBe(`Bob <bob@example.org> verified key ${BOB}`);
    expect(mail.headers.get('x-kith-message-id')).toBe(message.id);
    expect(raw.subarray(raw.length - message.raw.length).equals(message.raw)).toBe(true);
  });

  test('signature failed: never "pass", no key vouched for', async () => {
    const { mail } = await receiveAndRead(incoming({ verified: false }));
    const results = String(mail.headers.get('authentication-results'));
    expect(results).toMatch(/^kith; kith=fail /);
    expect(results).not.toContain('pass');
    expect(results).not.toContain(BOB);
    expect(mail.headers.get('x-kith-sender')).toMatch(/^UNVERIFIED/);
  });

  test("forged Kith headers are removed (folded ones too); other servers' results stay", async () => {
    const { raw, mail } = await receiveAndRead(incoming({ verified: false, forged: true }));
    const results = mail.headerLines.filter((l) => l.key === 'authentication-results').map((l) => l.line);
    expect(results).toHaveLength(2);
    expect(results[0]).toMatch(/^Authentication-Results: kith; kith=fail/);
    expect(results[1]).toBe('Authentication-Results: mx.example.org; dkim=pass header.d=example.org');
    expect(mail.headerLines.filter((l) => l.key === 'x-kith-sender')).toHaveLength(1);
    expect(raw.toString()).not.toContain('policy.entity=B0B0');
    expect(mail.text).toContain('Body stays byte for byte.');
  });

  test('verified key, but a From: address the entity does not have: policy, not pass', async () => {
    const { mail } = await receiveAndRead(incoming({ verified: true, from: 'ceo@bank.example' }));
    expect(mail.headers.get('authentication-results')).toMatch(/^kith; kith=policy reason=/);
    expect(mail.headers.get('x-kith-sender')).toContain('the From: address is not theirs');
  });
});

// Forms a mail reader still takes for our fields, though they are not well-formed fields.
describe('forged Kith headers in any form a reader would show', () => {
  const forms: Record<string, string[]> = {
    'space before the colon': [
      'X-Kith-Sender : Bob <bob@example.org> verified key B0B0',
      'Authentication-Results : kith; kith=pass header.from=bob@example.org',
    ],
    'a comment before the authserv-id': [
      'Authentication-Results: (x) kith; kith=pass header.from=bob@example.org',
    ],
    'our method under another authserv-id, folded': [
      'authentication-results: mx.example.org;',
      '\tkith=pass header.from=bob@example.org',
    ],
    'lower case, tab before the colon': ['x-kith-sender\t: Bob verified key B0B0'],
    'after a bare LF': ['Subject: hi\nX-Kith-Sender: Bob verified key B0B0'],
    'after a bare CR': ['Comments: hi\rX-Kith-Sender: Bob verified key B0B0'],
  };

  test.each(Object.keys(forms))('%s: stripped; the failed signature shows as failed', async (form) => {
    const raw = Buffer.from(
      [...forms[form], 'From: Bob <bob@example.org>', 'To: alice@example.org', '', 'body', ''].join('\r\n'),
    );
    const out = prepareInbound({
      id: asMessageId('0123456789abcdef0123456789abcdef'),
      raw,
      sender: { fingerprint: BOB, email: 'bob@example.org' },
      verified: false,
      receivedAt: new Date(),
    });
    const mail = await simpleParser(out);
    const ours = mail.headerLines.filter((l) => /^(x-kith-sender|authentication-results)$/.test(l.key));
    expect(ours.map((l) => l.line)).toEqual([
      'Authentication-Results: kith; kith=fail reason="OpenPGP signature did not verify"',
      'X-Kith-Sender: UNVERIFIED: the signature did not verify; the sender is unknown',
    ]);
    expect(out.toString('latin1')).not.toContain('verified key B0B0');
    expect(out.toString('latin1')).not.toMatch(/kith=pass/);
  });
});

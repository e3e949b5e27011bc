import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { simpleParser, type ParsedMail } from 'mailparser';
import nodemailer from 'nodemailer';
import { asMessageId, type MessageId } from '../../common/ids.ts';
import { gatewayEventFor } from '../../agent/outbound.ts';
import type { GatewaySink } from '../../gateway/delivery.ts';
import { createGatewaySink } from '../../gateway/status/index.ts';
import { ALICE, BOB_FPR, CAROL_FPR, capturingLogger, startHarness, type Harness } from '../smtp/harness.ts';
import { openInbox } from './inbox.ts';
import { groupCommitOf, Rider } from '../../store/group-commit.ts';

/** The fields of a message/delivery-status body: the per-message block, then one per recipient. */
function dsnBlocks(body: string): Array<Record<string, string>> {
  return body
    .trim()
    .split(/\r?\n\r?\n/)
    .map((block) =>
      Object.fromEntries(
        block
          .replace(/\r?\n[ \t]+/g, ' ')
          .split(/\r?\n/)
          .map((line) => {
            const colon = line.indexOf(':');
            return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
          }),
      ),
    );
}

function parts(mail: ParsedMail) {
  const status = mail.attachments.find((a) => a.contentType === 'message/delivery-status');
  const original = mail.attachments.find(
    (a) => a.contentType === 'message/rfc822' || a.contentType === 'text/rfc822-headers',
  );
  return { status: status ? dsnBlocks(status.content.toString()) : [], original };
}

describe('status emails (RFC 3464) in the sender INBOX', () => {
  let h: Harness;
  let sink: GatewaySink;
  let inbox: Awaited<ReturnType<typeof openInbox>>;
  const ORIGINAL_ID = '<original-42@example.org>';

  beforeAll(async () => {
    h = await startHarness();
    const { log } = capturingLogger();
    inbox = await openInbox(h.db, h.blobs, log);
    sink = createGatewaySink({
      store: inbox.drop,
      submissions: h.submissions,
      blobs: h.blobs,
      composer: {
        from: 'Kith <postmaster@kith>',
        reportingMta: 'kith.localhost',
        maxAgeMs: 5 * 86_400_000,
        maxReturnBytes: 1024 * 1024,
        alwaysReportDelivery: false,
      },
      log,
    });
  });
  afterAll(async () => {
    await inbox.stop();
    await h.stop();
  });

  /** Submits through SMTP with nodemailer; returns the Kith message id of each recipient copy. */
  async function submit(
    dsn: Record<string, unknown> | undefined,
    subject: string,
    envelopeFrom?: string,
  ): Promise<Map<string, MessageId>> {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: h.port,
      requireTLS: true,
      tls: { ca: [h.tls.cert], servername: 'localhost' },
      auth: { user: ALICE.user, pass: ALICE.password },
    });
    try {
      await transport.sendMail({
        from: 'Alice <alice@example.org>',
        to: ['bob@example.org', 'carol@example.net'],
        subject,
        text: 'the original body',
        messageId: ORIGINAL_ID,
        references: '<earlier@example.org>',
        dsn: dsn as never,
        ...(envelopeFrom !== undefined
          ? { envelope: { from: envelopeFrom, to: ['bob@example.org', 'carol@example.net'] } }
          : {}),
      });
    } finally {
      transport.close();
    }
    const [submission] = h.submissions.list(1);
    return new Map(submission.recipients.map((r) => [r.fingerprint, asMessageId(r.messageId)]));
  }

  async function newMessages(before: number): Promise<ParsedMail[]> {
    const all = await inbox.messages();
    // keepDeliveryStatus: mailparser otherwise folds the machine part into the text
    return Promise.all(all.slice(before).map((raw) => simpleParser(raw, { keepDeliveryStatus: true })));
  }

  test('delivered (NOTIFY=SUCCESS): field by field, threaded, headers of the original returned', async () => {
    const copies = await submit(
      { id: 'env-delivered', return: 'full', notify: ['success', 'failure'], recipient: 'bob@example.org' },
      'Lunch?',
    );
    const before = (await inbox.messages()).length;
    const at = new Date('2025-07-01T10:05:00Z');
    await sink.status({ kind: 'progress', id: copies.get(BOB_FPR)!, to: BOB_FPR, at, hop: 1 });
    await sink.status({ kind: 'delivered', id: copies.get(BOB_FPR)!, to: BOB_FPR, at });
    await sink.status({ kind: 'delivered', id: copies.get(BOB_FPR)!, to: BOB_FPR, at }); // repeated: no second email
    const [mail, ...more] = await newMessages(before);
    expect(more).toHaveLength(0);
    expect(mail.headers.get('content-type')).toMatchObject({
      value: 'multipart/report',
      params: { 'report-type': 'delivery-status' },
    });
    expect(mail.subject).toBe('Delivered: Lunch?');
    expect(mail.to).toMatchObject({ value: [{ address: 'alice@example.org' }] });
    expect(mail.inReplyTo).toBe(ORIGINAL_ID);
    expect(mail.references).toEqual(['<earlier@example.org>', ORIGINAL_ID]);
    expect(mail.headers.get('auto-submitted')).toBe('auto-replied');
    expect(mail.text).toContain('was delivered on Tue, 01 Jul 2025 10:05:00 +0000');
    expect(mail.text).toContain('bob@example.org');
    const { status, original } = parts(mail);
    expect(status[0]).toEqual({
      'reporting-mta': 'dns; kith.localhost',
      'original-envelope-id': 'env-delivered',
      'arrival-date': expect.stringMatching(/\+0000$/),
    });
    expect(status[1]).toEqual({
      'original-recipient': 'rfc822; bob@example.org',
      'final-recipient': 'rfc822; bob@example.org',
      action: 'delivered',
      status: '2.0.0',
      'last-attempt-date': 'Tue, 01 Jul 2025 10:05:00 +0000',
      'x-kith-recipient-entity': BOB_FPR,
      'x-kith-message-copy': copies.get(BOB_FPR),
    });
    // success reports return headers only, whatever RET says
    expect(original?.contentType).toBe('text/rfc822-headers');
    expect(original?.content.toString()).toContain(`Message-ID: ${ORIGINAL_ID}`);
    expect(original?.content.toString()).not.toContain('the original body');
  });

  // The events come from the agent's own mapping (agent/outbound.ts) of what the engine emits:
  // a stall at hop 0 while waiting for a path, and one past two relays while trying another path.
  test("the status email, the copy's new state and the agent's final mark are one commit", async () => {
    const copies = await submit({ id: 'env-one-commit', notify: ['success'] }, 'One commit');
    const id = copies.get(BOB_FPR)!;
    h.db.exec('CREATE TABLE IF NOT EXISTS test_final_marks (id TEXT PRIMARY KEY)');
    const final = new Rider(h.db, () => h.db.prepare('INSERT INTO test_final_marks VALUES (?)').run(id));
    const before = (await inbox.messages()).length;
    await groupCommitOf(h.db).run(() => undefined); // whatever the submission left queued
    const commits = groupCommitOf(h.db).stats.commits;
    await sink.status({ kind: 'delivered', id, to: BOB_FPR, at: new Date() }, final);
    expect(final.taken).toBe(true);
    expect(groupCommitOf(h.db).stats.commits - commits).toBe(1);
    const [mail] = await newMessages(before);
    expect(mail!.subject).toBe('Delivered: One commit');
    expect(h.submissions.findByMessage(id)!.recipient.status).toBe('delivered');
    expect(h.db.prepare('SELECT id FROM test_final_marks').all()).toEqual([{ id }]);
  });

  test('delayed: in sentences, from what the agent really produces; one report per stall; Will-Retry-Until', async () => {
    const copies = await submit(undefined, 'Slow one');
    const before = (await inbox.messages()).length;
    const submittedAt = h.submissions.list(1)[0].receivedAt.getTime();
    const maxAgeMs = 5 * 86_400_000;
    const at = Date.parse('2025-07-01T11:00:00Z');
    const waiting = gatewayEventFor(
      { kind: 'stalled', id: copies.get(BOB_FPR)!, at, lastHop: 0, action: 'waiting for a path' },
      { recipient: BOB_FPR, createdAt: submittedAt },
      [{ hop: 0, event: 'stalled: waiting for a path', at }],
      maxAgeMs,
    )!;
    const hops = [
      { hop: 1, agent: '12D3KooWFirstRelay', event: 'reached', at: at - 2000 },
      { hop: 2, agent: '12D3KooWRelayAgent', event: 'reached', at: at - 1000 },
      { hop: 2, event: 'stalled: alternate path', at },
    ];
    const rerouting = gatewayEventFor(
      { kind: 'stalled', id: copies.get(CAROL_FPR)!, at, lastHop: 2, action: 'alternate path' },
      { recipient: CAROL_FPR, createdAt: submittedAt },
      hops,
      maxAgeMs,
    )!;
    await sink.status(waiting);
    await sink.status(rerouting);
    await sink.status({ ...rerouting, at: new Date('2025-07-01T12:00:00Z') }); // the same stall again: no second email
    const [first, second, ...more] = await newMessages(before);
    expect(more).toHaveLength(0);

    expect(first.subject).toBe('Delayed: Slow one');
    expect(first.text).toContain('has not been delivered yet.');
    expect(first.text).toContain('It has not left your agent yet (Tue, 01 Jul 2025 11:00:00 +0000).');
    expect(first.text).toContain(
      `Kith is looking for a path and will keep trying until ${new Date(submittedAt + maxAgeMs).toUTCString()}.`,
    );
    expect(first.text).not.toMatch(/hop 0|What Kith is doing about it/);
    expect(first.text).toContain('You do not need to do anything');
    const a = parts(first);
    expect(a.status[1]).toMatchObject({
      'final-recipient': 'rfc822; bob@example.org',
      action: 'delayed',
      status: '4.4.0',
    });
    expect(a.status[1]).not.toHaveProperty('remote-mta');

    expect(second.text).toContain(
      'It last reached the Kith agent 12D3KooWRelayAgent, 2nd on its path (Tue, 01 Jul 2025 11:00:00 +0000).',
    );
    expect(second.text).toContain('Kith is trying another path through the network.');
    const b = parts(second);
    expect(b.status[0]).not.toHaveProperty('original-envelope-id');
    expect(b.status[1]).toMatchObject({
      'final-recipient': 'rfc822; carol@example.net',
      action: 'delayed',
      status: '4.4.0',
      'remote-mta': 'x-kith; 12D3KooWRelayAgent',
      'last-attempt-date': 'Tue, 01 Jul 2025 11:00:00 +0000',
      'x-kith-recipient-entity': CAROL_FPR,
    });
    expect(new Date(b.status[1]['will-retry-until']).getTime()).toBe(
      Math.floor((submittedAt + maxAgeMs) / 1000) * 1000,
    );
    expect(b.status[1]).not.toHaveProperty('original-recipient');
  });

  test('a stall past a hop whose agent no report named: the hop, no Remote-MTA', () => {
    const event = gatewayEventFor(
      { kind: 'stalled', id: asMessageId('f'.repeat(32)), at: 0, lastHop: 1, action: 'alternate path' },
      { recipient: BOB_FPR, createdAt: 0 },
      [{ hop: 1, event: 'held', at: 0 }],
    );
    expect(event).toMatchObject({
      kind: 'delayed',
      hop: 1,
      action: 'Kith is trying another path through the network.',
    });
    expect(event).not.toHaveProperty('lastHop', expect.anything());
  });

  test('failed: RET=FULL attaches the original byte for byte; RET=HDRS only its header; status codes by cause', async () => {
    const full = await submit({ id: 'env-full', return: 'full', notify: ['failure'] }, 'Nobody home');
    const hdrs = await submit({ id: 'env-hdrs', return: 'headers', notify: ['failure'] }, 'Headers only');
    const outbox = await h.delivery.outbox();
    const before = (await inbox.messages()).length;
    const at = new Date('2025-07-06T10:00:00Z');
    await sink.status({
      kind: 'failed',
      id: full.get(BOB_FPR)!,
      to: BOB_FPR,
      at,
      reason: 'no path to the recipient',
      cause: 'no-path',
    });
    await sink.status({
      kind: 'failed',
      id: hdrs.get(CAROL_FPR)!,
      to: CAROL_FPR,
      at,
      reason: 'the message expired after 5 days',
      cause: 'expired',
    });
    // NOTIFY=FAILURE only: a later "delivered" of the other copy stays silent
    await sink.status({ kind: 'delivered', id: full.get(CAROL_FPR)!, to: CAROL_FPR, at });
    const [first, second, ...more] = await newMessages(before);
    expect(more).toHaveLength(0);

    expect(first.subject).toBe('Undelivered: Nobody home');
    expect(first.text).toContain('Reason: no path to the recipient');
    expect(first.text).toContain('Ask them for an invitation');
    expect(first.text).toContain('The original message is attached.');
    const a = parts(first);
    expect(a.status[0]['original-envelope-id']).toBe('env-full');
    expect(a.status[1]).toMatchObject({
      action: 'failed',
      status: '5.4.4',
      'diagnostic-code': 'x-kith; no path to the recipient',
      'final-recipient': 'rfc822; bob@example.org',
    });
    expect(a.original?.contentType).toBe('message/rfc822');
    const sent = outbox.find((m) => m.id === full.get(BOB_FPR))!.raw;
    expect(a.original?.content.equals(sent)).toBe(true);

    expect(second.subject).toBe('Undelivered: Headers only');
    const b = parts(second);
    expect(b.status[1]).toMatchObject({
      action: 'failed',
      status: '5.4.7',
      'final-recipient': 'rfc822; carol@example.net',
    });
    expect(b.original?.contentType).toBe('text/rfc822-headers');
    expect(b.original?.content.toString()).toContain('Subject: Headers only');
    expect(b.original?.content.toString()).not.toContain('the original body');

    const states = h.submissions.list(2).flatMap((s) => s.recipients.map((r) => r.status));
    expect(states.sort()).toEqual(['delivered', 'failed', 'failed', 'pending']);
  });

  test('alwaysReportDelivery: without NOTIFY, "delivered" is reported only when configured', async () => {
    const copies = await submit(undefined, 'No NOTIFY');
    const configured = createGatewaySink({
      store: inbox.drop,
      submissions: h.submissions,
      blobs: h.blobs,
      composer: {
        from: 'Kith <postmaster@kith>',
        reportingMta: 'kith.localhost',
        maxAgeMs: 5 * 86_400_000,
        maxReturnBytes: 1024 * 1024,
        alwaysReportDelivery: true,
      },
      log: capturingLogger().log,
    });
    const before = (await inbox.messages()).length;
    const at = new Date('2025-07-01T13:00:00Z');
    await sink.status({ kind: 'delivered', id: copies.get(BOB_FPR)!, to: BOB_FPR, at }); // not configured
    await configured.status({ kind: 'delivered', id: copies.get(CAROL_FPR)!, to: CAROL_FPR, at });
    const [mail, ...more] = await newMessages(before);
    expect(more).toHaveLength(0);
    expect(mail.subject).toBe('Delivered: No NOTIFY');
    expect(parts(mail).status[1]).toMatchObject({
      'final-recipient': 'rfc822; carol@example.net',
      action: 'delivered',
      status: '2.0.0',
    });
    // both copies are delivered now, reported or not
    expect(h.submissions.list(1)[0].recipients.map((r) => r.status)).toEqual(['delivered', 'delivered']);
  });

  test('RET=FULL over maxReturnBytes: the failure report returns the header only, and says so', async () => {
    const copies = await submit({ return: 'full', notify: ['failure'] }, 'Too big to return');
    const size = h.submissions.list(1)[0].size;
    const capped = createGatewaySink({
      store: inbox.drop,
      submissions: h.submissions,
      blobs: h.blobs,
      composer: {
        from: 'Kith <postmaster@kith>',
        reportingMta: 'kith.localhost',
        maxAgeMs: 5 * 86_400_000,
        maxReturnBytes: size - 1,
        alwaysReportDelivery: false,
      },
      log: capturingLogger().log,
    });
    const before = (await inbox.messages()).length;
    await capped.status({
      kind: 'failed',
      id: copies.get(BOB_FPR)!,
      to: BOB_FPR,
      at: new Date(),
      reason: 'no path to the recipient',
      cause: 'no-path',
    });
    const [mail] = await newMessages(before);
    expect(mail.subject).toBe('Undelivered: Too big to return');
    expect(mail.text).toContain('The header of the original message is attached.');
    const { original } = parts(mail);
    expect(original?.contentType).toBe('text/rfc822-headers');
    expect(original?.content.toString()).toContain('Subject: Too big to return');
    expect(original?.content.toString()).not.toContain('the original body');
    // one byte more allowed and the whole message comes back
    const whole = createGatewaySink({
      store: inbox.drop,
      submissions: h.submissions,
      blobs: h.blobs,
      composer: {
        from: 'Kith <postmaster@kith>',
        reportingMta: 'kith.localhost',
        maxAgeMs: 5 * 86_400_000,
        maxReturnBytes: size,
        alwaysReportDelivery: false,
      },
      log: capturingLogger().log,
    });
    await whole.status({
      kind: 'failed',
      id: copies.get(CAROL_FPR)!,
      to: CAROL_FPR,
      at: new Date(),
      reason: 'no path to the recipient',
      cause: 'no-path',
    });
    const [, second] = await newMessages(before);
    expect(parts(second).original?.contentType).toBe('message/rfc822');
    expect(parts(second).original?.content.length).toBe(size);
  });

  test('the null sender (read receipts) and NOTIFY=NEVER get no status email', async () => {
    const copies = await submit({ notify: ['never'] }, 'Quiet');
    const receipt = await submit(undefined, 'Read: Lunch?', '');
    expect(h.submissions.list(1)[0].mailFrom).toBe('');
    const before = (await inbox.messages()).length;
    await sink.status({
      kind: 'failed',
      id: copies.get(BOB_FPR)!,
      to: BOB_FPR,
      at: new Date(),
      reason: 'no path',
    });
    await sink.status({
      kind: 'failed',
      id: receipt.get(BOB_FPR)!,
      to: BOB_FPR,
      at: new Date(),
      reason: 'no path',
    });
    expect(await newMessages(before)).toHaveLength(0);
  });
});

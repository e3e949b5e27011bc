import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { simpleParser, type ParsedMail } from 'mailparser';
import { AgentDeliveryService } from '../../agent/outbound.ts';
import { openRedis, type RedisHandle } from '../../agent/queue/connection.ts';
import { Outbox } from '../../agent/queue/outbox.ts';
import type { GiveUp } from '../../agent/queue/policy.ts';
import type { AgentId, MessageId } from '../../common/ids.ts';
import type { GatewaySink } from '../../gateway/delivery.ts';
import { createGatewaySink } from '../../gateway/status/index.ts';
import { tempDir } from '../helpers/tmp.ts';
import {
  ALICE,
  BOB_FPR,
  CAROL_FPR,
  aliceMessage,
  capturingLogger,
  startHarness,
  type Harness,
} from '../smtp/harness.ts';
import { RawSmtp } from '../smtp/raw-client.ts';
import { openInbox } from './inbox.ts';
import { HANG_MS } from '../helpers/hang.ts';

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

async function until(check: () => boolean | Promise<boolean>, timeoutMs = HANG_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

// The outbox gives a message up when it is older than delivery.maxAgeMs, in its BullMQ worker on
// a real redis-server. The "failed" status email must say why: never a path (5.4.4, get an
// invitation), or a path that got somewhere and then ran out of time (5.4.7, where it got to).
describe('give-up after delivery.maxAgeMs: no path vs expired on the way', () => {
  const MAX_AGE = 60_000;
  let h: Harness;
  let dir: ReturnType<typeof tempDir>;
  let redis: RedisHandle;
  let sink: GatewaySink;
  let inbox: Awaited<ReturnType<typeof openInbox>>;
  let outbox: Outbox;
  let service: AgentDeliveryService;
  let now = Date.now();
  const given: Array<{ id: MessageId; why: GiveUp }> = [];

  beforeAll(async () => {
    h = await startHarness();
    dir = tempDir();
    const { log } = capturingLogger();
    redis = await openRedis({ dir: join(dir.path), binary: 'redis-server', log });
    inbox = await openInbox(h.db, h.blobs, log);
    sink = createGatewaySink({
      store: inbox.drop,
      submissions: h.submissions,
      blobs: h.blobs,
      composer: {
        from: 'Kith <postmaster@kith>',
        reportingMta: 'kith.localhost',
        maxAgeMs: MAX_AGE,
        maxReturnBytes: 1024 * 1024,
        alwaysReportDelivery: false,
      },
      log,
    });
    outbox = new Outbox({
      db: h.db,
      connection: redis.connection,
      prefix: 'kith-give-up',
      log,
      maxAgeMs: MAX_AGE,
      clock: () => now,
      // as AgentDeliveryService.attempt does while discovery finds nothing
      attempt: async () => {
        throw new Error('no path to the recipient yet');
      },
      onGiveUp: (entry, why) => {
        given.push({ id: entry.id, why });
        void service.reportFinished(sink);
      },
    });
    service = new AgentDeliveryService({
      self: ALICE.fingerprint as never,
      trust: {} as never,
      engine: {} as never,
      outbox,
      log,
    });
    await outbox.start();
  });
  afterAll(async () => {
    await outbox.stop();
    await redis.stop();
    await inbox.stop();
    await h.stop();
    dir.remove();
  });

  test('never a hop: no-path with advice; hops reached then too old: expired naming the last hop', async () => {
    const { client } = await RawSmtp.connect(h.port);
    try {
      expect((await client.login(ALICE.user, ALICE.password)).code).toBe(235);
      await client.command('MAIL FROM:<alice@example.org>');
      await client.command('RCPT TO:<bob@example.org>');
      await client.command('RCPT TO:<carol@example.net>');
      expect((await client.data(aliceMessage({ subject: 'Anyone there?' }))).code).toBe(250);
    } finally {
      client.close();
    }
    const copies = new Map(h.submissions.list(1)[0].recipients.map((c) => [c.fingerprint, c.messageId]));
    const bob = copies.get(BOB_FPR)!;
    const carol = copies.get(CAROL_FPR)!;
    for (const [recipient, id] of copies) {
      await outbox.submit({ id, sender: ALICE.fingerprint as never, recipient, rawPath: '/x', size: 1 });
    }
    // Carol's copy got two hops in (as the engine's progress reports record), then stalled.
    await service.onEngineEvent(
      { kind: 'progress', id: carol, at: now, hop: 1, hops: 3, agent: 'dave-agent' as AgentId },
      sink,
    );
    await service.onEngineEvent(
      { kind: 'progress', id: carol, at: now + 1, hop: 2, hops: 3, agent: 'erin-agent' as AgentId },
      sink,
    );
    await until(() => outbox.get(bob)!.attempts >= 1 && outbox.get(carol)!.attempts >= 1);
    expect(given).toEqual([]);

    now += MAX_AGE + 1; // the next retry (1 s backoff) finds both too old
    await until(() => given.length === 2);
    expect(Object.fromEntries(given.map((g) => [g.id, g.why.cause]))).toEqual({
      [bob]: 'no-path',
      [carol]: 'expired',
    });
    expect(outbox.get(bob)?.state).toBe('failed');

    let mails: ParsedMail[] = [];
    await until(async () => {
      const all = await inbox.messages();
      mails = await Promise.all(all.map((raw) => simpleParser(raw, { keepDeliveryStatus: true })));
      return mails.filter((m) => m.subject === 'Undelivered: Anyone there?').length === 2;
    });
    const byCopy = new Map(
      mails.map((mail) => {
        const part = mail.attachments.find((a) => a.contentType === 'message/delivery-status')!;
        const [, recipient] = dsnBlocks(part.content.toString());
        return [recipient['x-kith-message-copy'], { mail, recipient }];
      }),
    );

    const noPath = byCopy.get(bob)!;
    expect(noPath.recipient).toMatchObject({
      'final-recipient': 'rfc822; bob@example.org',
      action: 'failed',
      status: '5.4.4',
      'diagnostic-code':
        "x-kith; no path found: nobody in your network trusts this person's agent; ask them for an invitation",
      'x-kith-recipient-entity': BOB_FPR,
    });
    expect(noPath.mail.text).toContain('No agent in your web of trust found a way to this person');
    expect(noPath.mail.text).not.toContain('expired');

    const expired = byCopy.get(carol)!;
    expect(expired.recipient).toMatchObject({
      'final-recipient': 'rfc822; carol@example.net',
      action: 'failed',
      status: '5.4.7',
      'diagnostic-code':
        'x-kith; expired: it last reached the agent erin-agent (hop 2 of its path) and was not delivered in time',
    });
    expect(expired.mail.text).toContain('Kith kept trying until the message expired');
    // Given up once: nothing left to hand over once the give-ups' own reportFinished() calls
    // have recorded what they handed over (markFinalReported resolves after its group commit's
    // sync), and a further call sends no third email.
    await until(() => outbox.finishedUnreported().length === 0);
    expect(await service.reportFinished(sink)).toBe(0);
    const after = await Promise.all(
      (await inbox.messages()).map((raw) => simpleParser(raw, { keepDeliveryStatus: true })),
    );
    expect(after.filter((m) => m.subject === 'Undelivered: Anyone there?')).toHaveLength(2);
  });

  // With no path the engine re-attempts every stall timeout and meets its own deadline (the same
  // delivery.maxAgeMs) before the outbox's backed-off job does: its failure must say the same.
  test("the engine's own deadline failure: no-path without a hop, expired naming the last hop", async () => {
    const { client } = await RawSmtp.connect(h.port);
    try {
      expect((await client.login(ALICE.user, ALICE.password)).code).toBe(235);
      await client.command('MAIL FROM:<alice@example.org>');
      await client.command('RCPT TO:<bob@example.org>');
      await client.command('RCPT TO:<carol@example.net>');
      expect((await client.data(aliceMessage({ subject: 'Deadline' }))).code).toBe(250);
    } finally {
      client.close();
    }
    const copies = new Map(h.submissions.list(1)[0].recipients.map((c) => [c.fingerprint, c.messageId]));
    const bob = copies.get(BOB_FPR)!;
    const carol = copies.get(CAROL_FPR)!;
    for (const [recipient, id] of copies) {
      await outbox.submit({ id, sender: ALICE.fingerprint as never, recipient, rawPath: '/x', size: 1 });
    }
    await service.onEngineEvent(
      { kind: 'progress', id: carol, at: now, hop: 1, hops: 3, agent: 'dave-agent' as AgentId },
      sink,
    );
    const reason = 'no delivery before the deadline'; // what agent/delivery/sender.ts says
    await service.onEngineEvent({ kind: 'failed', id: bob, at: now + 5, reason }, sink);
    await service.onEngineEvent({ kind: 'failed', id: carol, at: now + 5, reason }, sink);

    const all = await Promise.all(
      (await inbox.messages()).map((raw) => simpleParser(raw, { keepDeliveryStatus: true })),
    );
    const fields = new Map(
      all
        .filter((m) => m.subject === 'Undelivered: Deadline')
        .map((mail) => {
          const part = mail.attachments.find((a) => a.contentType === 'message/delivery-status')!;
          const [, recipient] = dsnBlocks(part.content.toString());
          return [recipient['x-kith-message-copy'], recipient];
        }),
    );
    expect(fields.size).toBe(2);
    expect(fields.get(bob)).toMatchObject({
      status: '5.4.4',
      'diagnostic-code': expect.stringContaining('no path found'),
    });
    expect(fields.get(carol)).toMatchObject({
      status: '5.4.7',
      'diagnostic-code':
        'x-kith; expired: it last reached the agent dave-agent (hop 1 of its path) and was not delivered in time',
    });
    expect(outbox.get(bob)?.lastError).toContain('no path found');
  });
});

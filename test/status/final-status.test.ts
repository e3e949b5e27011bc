import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { simpleParser } from 'mailparser';
import { AgentDeliveryService } from '../../agent/outbound.ts';
import { Outbox } from '../../agent/queue/outbox.ts';
import type { MessageId } from '../../common/ids.ts';
import type { GatewaySink } from '../../gateway/delivery.ts';
import { createGatewaySink } from '../../gateway/status/index.ts';
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

// The outbox commits a final state before the gateway writes the status email; a crash in
// between must not lose the email, and handing the status over again must not double it.
describe('final status emails survive a crash between the outbox and the gateway', () => {
  let h: Harness;
  let sink: GatewaySink;
  let inbox: Awaited<ReturnType<typeof openInbox>>;
  let outbox: Outbox;
  let service: AgentDeliveryService;
  /** The gateway of a node that dies before the status email is written. */
  const crashing: GatewaySink = {
    receive: () => Promise.reject(new Error('process died')),
    status: () => Promise.reject(new Error('process died')),
  };

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
        reportingMta: 'kith',
        maxAgeMs: 86_400_000,
        maxReturnBytes: 1024 * 1024,
        alwaysReportDelivery: true,
      },
      log,
    });
    // The outbox's SQLite rows are all this needs; its BullMQ queue is never started.
    outbox = new Outbox({
      db: h.db,
      connection: {} as never,
      prefix: 'test',
      log,
      maxAgeMs: 86_400_000,
      attempt: async () => undefined,
      onGiveUp: () => undefined,
    });
    service = new AgentDeliveryService({
      self: ALICE.fingerprint as never,
      trust: {} as never,
      engine: {} as never,
      outbox,
      log,
    });
  });
  afterAll(async () => {
    await inbox.stop();
    await h.stop();
  });

  /** One message to Bob and Carol over SMTP, its copies in the agent's outbox as submit() puts them. */
  async function sendOne(subject: string): Promise<Map<string, MessageId>> {
    const { client } = await RawSmtp.connect(h.port);
    try {
      expect((await client.login(ALICE.user, ALICE.password)).code).toBe(235);
      await client.command('MAIL FROM:<alice@example.org>');
      await client.command('RCPT TO:<bob@example.org>');
      await client.command('RCPT TO:<carol@example.net>');
      expect((await client.data(aliceMessage({ subject }))).code).toBe(250);
    } finally {
      client.close();
    }
    const copies = h.submissions.list(1)[0].recipients;
    for (const copy of copies) {
      await outbox.submit({
        id: copy.messageId,
        sender: ALICE.fingerprint as never,
        recipient: copy.fingerprint,
        rawPath: '/nonexistent',
        size: 1,
      });
    }
    return new Map(copies.map((c) => [c.fingerprint, c.messageId]));
  }

  async function subjects(): Promise<string[]> {
    const all = await inbox.messages();
    return Promise.all(all.map(async (raw) => (await simpleParser(raw)).subject ?? ''));
  }

  test('crash after outbox.finish: the next start writes the delivered and failed emails, once', async () => {
    const copies = await sendOne('Crashed once');
    const at = Date.parse('2025-07-01T10:00:00Z');
    await expect(
      service.onEngineEvent({ kind: 'delivered', id: copies.get(BOB_FPR)!, at }, crashing),
    ).rejects.toThrow('process died');
    await expect(
      service.onEngineEvent(
        { kind: 'failed', id: copies.get(CAROL_FPR)!, at, reason: 'deadline passed: expired' },
        crashing,
      ),
    ).rejects.toThrow('process died');
    expect(outbox.get(copies.get(BOB_FPR)!)?.state).toBe('delivered');
    expect(await subjects()).toEqual([]);

    // the restarted node, once its gateway is there
    expect(await service.reportFinished(sink)).toBe(2);
    expect((await subjects()).sort()).toEqual(['Delivered: Crashed once', 'Undelivered: Crashed once']);
    const failed = (await Promise.all((await inbox.messages()).map((raw) => simpleParser(raw)))).find((m) =>
      m.subject?.startsWith('Undelivered'),
    )!;
    // the copy never reached a hop: its age failure is worded as no path (failedReason)
    expect(failed.text).toContain(
      "Reason: no path found: nobody in your network trusts this person's agent; ask them for an invitation",
    );
    expect(failed.text).toContain('No agent in your web of trust found a way to this person');
    // a second start has nothing left to hand over
    expect(await service.reportFinished(sink)).toBe(0);
    expect(await subjects()).toHaveLength(2);
  });

  test('crash after the engine stored the outcome, before the outbox did: the next start finishes both copies, one email each', async () => {
    const copies = await sendOne('Engine knew');
    const bob = copies.get(BOB_FPR)!;
    const carol = copies.get(CAROL_FPR)!;
    // What the restarted node finds: the engine's store has each copy's end (it is written when
    // the report comes), the outbox a group commit later never got it, so both still look queued.
    const ended = new Map<MessageId, 'delivered' | 'failed'>([
      [bob, 'delivered'],
      [carol, 'failed'],
    ]);
    const restarted = new AgentDeliveryService({
      self: ALICE.fingerprint as never,
      trust: {} as never,
      engine: { outcomeOf: (id: MessageId) => ended.get(id) } as never,
      outbox,
      log: capturingLogger().log,
    });
    expect(outbox.get(bob)?.state).toBe('queued');
    const before = (await subjects()).length;

    const events = restarted.unrecordedOutcomes();
    expect(events.filter((e) => e.id === bob || e.id === carol).map((e) => [e.id, e.kind])).toEqual([
      [bob, 'delivered'],
      [carol, 'failed'],
    ]);
    for (const event of events) await restarted.onEngineEvent(event, sink);
    expect(outbox.get(bob)?.state).toBe('delivered');
    expect(outbox.get(carol)?.state).toBe('failed');
    expect((await subjects()).slice(before).sort()).toEqual([
      'Delivered: Engine knew',
      'Undelivered: Engine knew',
    ]);
    // a queue job that runs for it now does not wait for events that will never come
    await restarted.attempt(outbox.get(bob)!, 1);
    // the next start finds nothing left
    expect(restarted.unrecordedOutcomes().filter((e) => e.id === bob || e.id === carol)).toEqual([]);
    expect(await restarted.reportFinished(sink)).toBe(0);
  });

  test('a final status that reached the gateway is not handed over again', async () => {
    const copies = await sendOne('Went fine');
    const before = (await subjects()).length;
    await service.onEngineEvent({ kind: 'delivered', id: copies.get(BOB_FPR)!, at: Date.now() }, sink);
    expect((await subjects()).slice(before)).toEqual(['Delivered: Went fine']);
    expect(await service.reportFinished(sink)).toBe(0);
  });

  test("status() is idempotent per copy and kind: a crash after the email but before the copy's state moved", async () => {
    const copies = await sendOne('Told twice');
    const id = copies.get(CAROL_FPR)!;
    const before = (await subjects()).length;
    const event = { kind: 'delivered' as const, id, to: CAROL_FPR, at: new Date() };
    await sink.status(event);
    // as if the process died between storing the email and recording the copy's new state
    h.db.prepare("UPDATE gateway_submission_recipients SET status = 'pending' WHERE message_id = ?").run(id);
    await sink.status(event);
    expect((await subjects()).slice(before)).toEqual(['Delivered: Told twice']);
    expect(h.submissions.findByMessage(id)?.recipient.status).toBe('delivered');
  });
});

import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { plainCodec, type PayloadCodec } from '../../agent/payload/codec.ts';
import { Simulation } from '../../agent/sim/sim.ts';
import { asFingerprint } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import type { InboundMessage } from '../../gateway/delivery.ts';
import { createMailStore } from '../../gateway/mailbox/index.ts';
import { createGatewaySink } from '../../gateway/status/index.ts';
import { createSubmissionStore } from '../../gateway/submissions.ts';
import { BlobStore } from '../../store/blobs.ts';
import { openDatabase } from '../../store/db.ts';
import { until } from '../agents/network.ts';
import { newMessageId, recordEvents } from './helpers.ts';

describe('exactly once into the mailbox', () => {
  let sim: Simulation | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    sim = undefined;
    dir = undefined;
  });

  test('a second manifest copy (re-sent after a stall) arriving while the first is still being opened is not delivered again', async () => {
    // D's first open of the manifest lasts until the second copy (re-sent along the other path
    // when the first stalled) has arrived: the second copy is handed over while the first is still
    // being opened (before this was fixed: both were opened and both reached the mailbox). Without
    // the fix the second copy is opened too, which also ends the wait, and the test fails below.
    const dFingerprint = asFingerprint(randomBytes(20).toString('hex').toUpperCase());
    let opens = 0;
    const slow = (base: PayloadCodec): PayloadCodec => ({
      seal: (plain, to) => base.seal(plain, to),
      async open(sealed) {
        const opened = await base.open(sealed);
        if (opens++ === 0)
          await until(
            () => ((d.engine.metrics.get('duplicate_message') ?? 0) > 0 || opens > 1 ? true : undefined),
            'the second copy at D',
            300_000,
            5,
          );
        return opened;
      },
    });
    sim = new Simulation({
      delivery: { stallTimeoutMs: 100 },
      customize: (i) =>
        i === 3 ? { fingerprint: dFingerprint, codec: slow(plainCodec(dFingerprint)) } : undefined,
    });
    const [a, b1, b2, d] = sim.addAgents(4);
    sim.connect(a, b1);
    sim.connect(b1, d);
    sim.connect(a, b2);
    sim.connect(b2, d);
    await sim.start();
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    await a.engine.send({ id, to: d.entity, source: { kind: 'bytes', data: Buffer.from('once please') } });
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);
    await sim.network.idle();

    expect(rec.events.some((e) => e.kind === 'stalled' && e.action === 'alternate path')).toBe(true);
    expect(d.engine.metrics.get('duplicate_message')).toBeGreaterThan(0);
    expect(d.inbox.filter((m) => m.id === id)).toHaveLength(1);
    expect(d.engine.metrics.get('delivered')).toBe(1);
  });

  test('the gateway sink stores a message id once, even when handed it again (a crash before the agent recorded it)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kith-once-'));
    const db = openDatabase(join(dir, 'kith.db'));
    const blobs = new BlobStore(join(dir, 'blobs'));
    await blobs.init();
    const store = createMailStore({ db, blobs, log: silentLogger() });
    await store.start();
    try {
      const sink = createGatewaySink({
        store,
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
      const message = (id = newMessageId(), body = 'hello'): InboundMessage => ({
        id,
        raw: Buffer.from(`From: b@example.org\r\nTo: a@example.org\r\nSubject: hi\r\n\r\n${body}\r\n`),
        sender: { fingerprint: asFingerprint('B0B0'.repeat(10)) },
        verified: true,
        receivedAt: new Date(),
      });
      const inbox = () => store.entries(store.mailbox('INBOX').id);
      const first = message();
      await sink.receive(first);
      await sink.receive(first); // re-delivered after a crash between the mailbox commit and markDelivered
      await Promise.all([sink.receive(message(first.id)), sink.receive(message(first.id))]);
      expect(inbox()).toHaveLength(1);

      // Moved to another mailbox by the user: still known.
      store.move(store.mailbox('INBOX').id, [inbox()[0]!.uid], 'Archive');
      await sink.receive(first);
      expect(inbox()).toHaveLength(0);

      // A sender cannot suppress a message by quoting its id in a header of its own (stripped on the way in).
      const other = message(newMessageId(), 'x');
      await sink.receive({
        ...message(),
        raw: Buffer.from(`X-Kith-Message-Id: ${other.id}\r\nSubject: trick\r\n\r\nbody\r\n`),
      });
      await sink.receive(other);
      expect(inbox()).toHaveLength(2);
    } finally {
      await store.stop();
      db.close();
    }
  });
});

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  burst,
  expectDeliveredOnce,
  NOTHING_LOST,
  faultSeed,
  linked,
  seeded,
  startRelayLine,
  stopAll,
  submitAll,
  until,
  type RelayLine,
} from '../helpers/kith-nodes.ts';
import { tempDir } from '../helpers/tmp.ts';
import { FAULT_CASE_MS } from '../helpers/hang.ts';

// The sender's wall clock jumps 2 hours ahead in the middle of a burst, as an NTP step would.
// The process clock is moved with libfaketime (Debian's faketime package): its offset is read
// from a file on every call, and the monotonic clock (timers) is left alone. Its private
// redis-server keeps the real clock. What must happen (docs/protocol.md 7.6, "Clocks"): the node's
// delivery core keeps its steady time, so fresh paths do not look expired to it and its packets do
// not look too long-lived to carol.
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const unavailable = existsSync(LIBFAKETIME)
  ? undefined
  : `${LIBFAKETIME} is missing (apt-get install faketime)`;
const maybe = unavailable ? describe.skip : describe;
if (unavailable) process.stdout.write(`test/faults/clock skipped: ${unavailable}\n`);

maybe('a clock jump of +2 h at the sender during a burst, alice → carol → bob', () => {
  const dir = tempDir('kith-faults-clock-');
  const offsetFile = join(dir.path, 'alice-clock');
  let line: RelayLine;

  beforeAll(async () => {
    writeFileSync(offsetFile, '+0\n');
    // redis-server does not start under libfaketime: it runs on the real clock, through a
    // wrapper that drops the preload (KITH_REDIS_BINARY)
    const redis = join(dir.path, 'redis-server');
    writeFileSync(redis, '#!/bin/sh\nunset LD_PRELOAD\nexec redis-server "$@"\n', { mode: 0o755 });
    line = await startRelayLine(dir.path, {
      sender: {
        env: {
          LD_PRELOAD: LIBFAKETIME,
          FAKETIME_TIMESTAMP_FILE: offsetFile,
          FAKETIME_NO_CACHE: '1',
          FAKETIME_DONT_FAKE_MONOTONIC: '1',
          KITH_REDIS_BINARY: redis,
        },
      },
    });
  }, FAULT_CASE_MS);

  afterAll(async () => {
    if (line) await stopAll(line.all);
    dir.remove();
  }, 120_000);

  test(
    'every message delivered once, links and certificates still accepted',
    async () => {
      const label = 'clock jump';
      const seed = faultSeed(label);
      const random = seeded(seed);
      const { sender, relay, recipient } = line;
      const mails = burst(label, sender.options.email, recipient.options.email, {
        count: 30,
        big: 0,
        random,
      });
      const at = 3 + Math.floor(random() * 24);
      process.stdout.write(`${label}: alice's clock +2 h after message ${at}\n`);
      await submitAll(sender, recipient.options.email, mails, {
        afterAccepted: (i) => {
          if (i === at) writeFileSync(offsetFile, '+2h\n');
        },
      });
      // the jump really happened: alice's delivery core saw the system clock step (and ignored it)
      await until(
        () => (/the system clock stepped/.test(sender.stderr()) ? true : undefined),
        "alice to notice its clock's step",
      );
      const result = await expectDeliveredOnce(mails, recipient, sender, { label, seed, nodes: line.all });
      expect(result).toEqual(NOTHING_LOST);
      // alice's certificate and hellos still pass at carol's (unjumped) clock, and the other way
      await linked(sender, relay);
      await linked(relay, sender);
    },
    FAULT_CASE_MS,
  );
});

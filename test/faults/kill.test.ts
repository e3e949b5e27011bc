import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import {
  burst,
  expectDeliveredOnce,
  NOTHING_LOST,
  faultSeed,
  seeded,
  startRelayLine,
  stopAll,
  submitAll,
  type ProcessNode,
  type RelayLine,
} from '../helpers/kith-nodes.ts';
import { tempDir } from '../helpers/tmp.ts';
import { FAULT_CASE_MS } from '../helpers/hang.ts';

// kill -9 (node and its private redis-server, as a power cut) of the sender, the relay and the
// recipient at a seeded random point of a 50-message burst (1 KB and three 5 MiB messages),
// then a restart from the data directory: every message reaches the recipient's INBOX exactly
// once and whole, and the sender gets one "Delivered" status email for each.
describe('kill -9 during a 50-message burst, alice → carol → bob', () => {
  const dir = tempDir('kith-faults-kill-');
  let line: RelayLine;

  beforeAll(async () => {
    line = await startRelayLine(dir.path);
  });

  afterAll(async () => {
    if (line) await stopAll(line.all);
    dir.remove();
  });

  const killDuringBurst = async (label: string, victim: () => ProcessNode) => {
    const seed = faultSeed(label);
    const random = seeded(seed);
    const { sender, recipient } = line;
    const mails = burst(label, sender.options.email, recipient.options.email, {
      count: 50,
      big: 3,
      random,
    });
    const killAt = 5 + Math.floor(random() * 40);
    process.stdout.write(`${label}: kill -9 of ${victim().name} after message ${killAt} was accepted\n`);
    let restarted: Promise<void> | undefined;
    await submitAll(sender, recipient.options.email, mails, {
      afterAccepted: async (i) => {
        if (i !== killAt) return;
        const node = victim();
        await node.kill9();
        // the sender comes back before the client goes on; the others while the burst goes on
        if (node === sender) await node.start();
        else restarted = node.start();
      },
    });
    await restarted;
    const result = await expectDeliveredOnce(mails, recipient, sender, { label, seed, nodes: line.all });
    expect(result).toEqual(NOTHING_LOST);
  };

  test('the sender', () => killDuringBurst('kill sender', () => line.sender), FAULT_CASE_MS);
  test('the relay', () => killDuringBurst('kill relay', () => line.relay), FAULT_CASE_MS);
  test('the recipient', () => killDuringBurst('kill recipient', () => line.recipient), FAULT_CASE_MS);
});

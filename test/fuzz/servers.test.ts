// Seeded short fuzz runs of the live SMTP submission server (random sessions over TCP, each
// answered and closed after its QUIT, never an unmapped 451 4.3.0) and the live IMAP server
// (random commands on one session; the long run: npm run fuzz).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { propertyOf, type Target } from './harness.ts';
import { smtpServerTarget } from './targets/servers.ts';
import { imapServerTarget } from './targets/imap-server.ts';

let smtp: Awaited<ReturnType<typeof smtpServerTarget>>;
let imap: Awaited<ReturnType<typeof imapServerTarget>>;
beforeAll(async () => {
  smtp = await smtpServerTarget();
  imap = await imapServerTarget();
});
afterAll(async () => {
  await smtp.stop();
  await imap.stop();
});

describe('fuzz: live SMTP and IMAP servers (seeded)', () => {
  test('random sessions and DATA are answered, closed after QUIT, never with an unmapped error', async () => {
    await fc.assert(propertyOf(smtp.target as Target), { numRuns: 200, seed: 20261203 });
    // The sessions get as far as delivery: some DATA was accepted (else the fuzz only met refusals).
    expect(smtp.accepted()).toBeGreaterThan(10);
  });
  test('random IMAP commands over one session: each answered before a sentinel NOOP, never SERVERBUG', async () => {
    await fc.assert(propertyOf(imap.target as Target), { numRuns: 300, seed: 20261203 });
    // The session stays logged in and selected long enough to do real work.
    expect(imap.fetches()).toBeGreaterThan(10);
  });
});

// Seeded short fuzz run of the live SMTP submission server: random sessions over TCP, each
// answered and closed after its QUIT, never an unmapped 451 4.3.0 (the long run: npm run fuzz).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { propertyOf, type Target } from './harness.ts';
import { smtpServerTarget } from './targets/servers.ts';

let smtp: Awaited<ReturnType<typeof smtpServerTarget>>;
beforeAll(async () => {
  smtp = await smtpServerTarget();
});
afterAll(() => smtp.stop());

describe('fuzz: live SMTP server (seeded)', () => {
  test('random sessions and DATA are answered, closed after QUIT, never with an unmapped error', async () => {
    await fc.assert(propertyOf(smtp.target as Target), { numRuns: 300, seed: 20261203 });
    // The sessions get as far as delivery: some DATA was accepted (else the fuzz only met refusals).
    expect(smtp.accepted()).toBeGreaterThan(10);
  });
});

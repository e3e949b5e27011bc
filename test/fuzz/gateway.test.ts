// Seeded short fuzz runs of the gateway's parsers: SMTP header checks and addresses, MIME, the
// IMAP command reader and argument parsers (the long run: npm run fuzz).
import { describe, test } from '@jest/globals';
import fc from 'fast-check';
import { propertyOf } from './harness.ts';
import { gatewayTargets } from './targets/gateway.ts';

describe('fuzz: gateway parsers (seeded)', () => {
  for (const target of gatewayTargets()) {
    test(`${target.name}: parses or refuses with a documented code or a typed rejection`, async () => {
      await fc.assert(propertyOf(target), { numRuns: 1000, seed: 20261203 });
    });
  }
});

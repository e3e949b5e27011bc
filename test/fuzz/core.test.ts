// Seeded short fuzz runs of the protocol-core decoders (the long run: npm run fuzz).
import { describe, test } from '@jest/globals';
import fc from 'fast-check';
import { propertyOf } from './harness.ts';
import { coreTargets } from './targets/core.ts';

describe('fuzz: protocol core (seeded)', () => {
  for (const target of coreTargets()) {
    test(`${target.name}: decodes or refuses with a documented code, never forged`, async () => {
      await fc.assert(propertyOf(target), { numRuns: 1000, seed: 20261203 });
    });
  }
});

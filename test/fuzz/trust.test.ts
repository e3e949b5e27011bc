// Seeded short fuzz runs of link frames, hello, invitations, address records, certificates, the
// sealed manifest, STUN and file headers (the long run: npm run fuzz).
import { afterAll, beforeAll, describe, test } from '@jest/globals';
import fc from 'fast-check';
import { propertyOf, type Target } from './harness.ts';
import { trustFixture, trustTargets, type TrustFixture } from './targets/trust.ts';

/** Each accepted input of these costs OpenPGP signature checks (milliseconds): fewer runs. */
const SLOW = new Set(['hello', 'invite-request', 'invite-reply', 'manifest-open', 'path-certificate']);
const NAMES = [
  'link-frames',
  'json-frame',
  'hello',
  'invite-request',
  'invite-reply',
  'invitation-code',
  'address-record',
  'path-certificate',
  'manifest-open',
  'stun',
  'file-header',
];

let fixture: TrustFixture;
let targets: Target[];
beforeAll(async () => {
  fixture = await trustFixture();
  targets = (await trustTargets(fixture)) as Target[];
});
afterAll(() => fixture.stop());

describe('fuzz: links, trust and their messages (seeded)', () => {
  test('every target is run here', () => {
    if (targets.map((t) => t.name).join() !== NAMES.join()) throw new Error('NAMES is out of date');
  });
  for (const name of NAMES) {
    test(`${name}: decodes or refuses with a documented code, never forged`, async () => {
      const target = targets.find((t) => t.name === name)!;
      await fc.assert(propertyOf(target), { numRuns: SLOW.has(name) ? 200 : 1000, seed: 20261203 });
    });
  }
});

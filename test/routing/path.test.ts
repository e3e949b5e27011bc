import { describe, expect, test } from '@jest/globals';
import { isKithError } from '../../common/errors.ts';
import { steadyClock } from '../../common/clock.ts';
import type { AgentId, Fingerprint } from '../../common/ids.ts';
import { SignatureVerifier, generateAgentKeys, type AgentKeys } from '../../agent/onion/keys.ts';
import { choosePath, PathCache, type CachedPath } from '../../agent/routing/path-cache.ts';
import {
  decodePath,
  encodePath,
  signRelayEntry,
  terminalEntry,
  PATH_CLOCK_SKEW_MS,
  verifyPath,
  type PathEntry,
} from '../../agent/routing/path.ts';
import { RateLimiter } from '../../agent/routing/rate-limit.ts';
import type { TrustView } from '../../agent/routing/trust.ts';

const target = 'A'.repeat(40) as Fingerprint;

function trustView(opts: { revoked?: AgentId[]; certOk?: boolean | undefined } = {}): TrustView {
  return {
    self: 'B'.repeat(40) as Fingerprint,
    relayTargets: () => [],
    ownCertificate: () => Buffer.alloc(0),
    verifyCertificate: async () => ('certOk' in opts ? opts.certOk : true),
    isRevoked: (a) => (opts.revoked ?? []).includes(a),
  };
}

function chain(keys: AgentKeys[], expiresAt = Date.now() + 60_000): PathEntry[] {
  const last = keys[keys.length - 1];
  return [
    ...keys
      .slice(0, -1)
      .map((k, i) => signRelayEntry(k, Buffer.from('cert'), keys[i + 1].signPublic, target, expiresAt)),
    terminalEntry(
      {
        agent: last.id,
        signPublic: last.signPublic,
        onionKey: last.onionPublic,
        certificate: Buffer.from('c'),
      },
      target,
      expiresAt,
    ),
  ];
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return isKithError(err) ? err.code : String(err);
  }
  return undefined;
}

describe('path records', () => {
  const self = generateAgentKeys();
  const keys = [generateAgentKeys(), generateAgentKeys(), generateAgentKeys()];
  const verifier = new SignatureVerifier();
  const opts = (trust = trustView()) => ({
    target,
    self: self.id,
    from: keys[0].id,
    trust,
    verifier,
    now: Date.now(),
    requireCertified: true,
  });

  test('a signed chain survives encoding and verifies', async () => {
    const entries = decodePath(encodePath(chain(keys)));
    expect(entries.map((e) => e.agent)).toEqual(keys.map((k) => k.id));
    await expect(verifyPath(entries, opts())).resolves.toBeUndefined();
  });

  test('forged, looping, revoked, expired, uncertified and foreign paths are refused', async () => {
    const forged = chain(keys);
    forged[1] = { ...forged[1], onionKey: generateAgentKeys().onionPublic };
    expect(await codeOf(verifyPath(forged, opts()))).toBe('ERR_PATH_SIGNATURE');

    const unsigned = chain(keys);
    unsigned[0] = { ...unsigned[0], signature: undefined };
    expect(await codeOf(verifyPath(decodePath(encodePath(unsigned)), opts()))).toBe('ERR_PATH_SIGNATURE');

    const loop = chain([keys[0], keys[1], keys[0], keys[2]]);
    expect(await codeOf(verifyPath(loop, opts()))).toBe('ERR_PATH_LOOP');
    const throughMe = chain([keys[0], self, keys[2]]);
    expect(await codeOf(verifyPath(throughMe, opts()))).toBe('ERR_PATH_LOOP');

    expect(await codeOf(verifyPath(chain(keys), opts(trustView({ revoked: [keys[1].id] }))))).toBe(
      'ERR_PATH_REVOKED',
    );
    // an entry's expiry is its signer's clock: a few minutes of skew are allowed, no more
    await expect(
      verifyPath(chain(keys, Date.now() - PATH_CLOCK_SKEW_MS + 60_000), opts()),
    ).resolves.toBeUndefined();
    expect(await codeOf(verifyPath(chain(keys, Date.now() - PATH_CLOCK_SKEW_MS - 1), opts()))).toBe(
      'ERR_PATH_EXPIRED',
    );
    expect(await codeOf(verifyPath(chain(keys), opts(trustView({ certOk: false }))))).toBe('ERR_PATH_CERT');
    // A sender must be able to check the recipient's certificate; a relay need not.
    expect(await codeOf(verifyPath(chain(keys), opts(trustView({ certOk: undefined }))))).toBe(
      'ERR_PATH_CERT',
    );
    await expect(
      verifyPath(chain(keys), { ...opts(trustView({ certOk: undefined })), requireCertified: false }),
    ).resolves.toBeUndefined();
    expect(await codeOf(verifyPath(chain(keys), { ...opts(), from: keys[1].id }))).toBe('ERR_PATH_MALFORMED');
    expect(
      await codeOf(Promise.resolve().then(() => decodePath(encodePath(chain(keys)).subarray(0, 50)))),
    ).toBe('ERR_PATH_MALFORMED');
  });
});

describe('choosing paths', () => {
  const p = (agents: string[], failures = 0, learnedAt = 0): CachedPath => ({
    entries: [],
    agents: agents as AgentId[],
    failures,
    learnedAt,
  });

  test('prefers never-failed, then paths avoiding a stalled one, then shorter, then fresher', () => {
    expect(choosePath([p(['a'], 1), p(['b', 'c'])])?.agents).toEqual(['b', 'c']);
    expect(choosePath([p(['x', 'd']), p(['y', 'z', 'd'])], new Set(['x' as AgentId]))?.agents).toEqual([
      'y',
      'z',
      'd',
    ]);
    expect(choosePath([p(['y', 'z', 'd']), p(['x', 'd'])])?.agents).toEqual(['x', 'd']);
    expect(choosePath([p(['x', 'd'], 0, 1), p(['y', 'd'], 0, 2)])?.agents).toEqual(['y', 'd']);
    expect(choosePath([])).toBeUndefined();
  });

  test('the cache forgets old paths and counts failures', () => {
    let now = 1000;
    const cache = new PathCache(500, () => now);
    const k = [generateAgentKeys(), generateAgentKeys()];
    cache.add(target, chain(k, 10_000_000));
    cache.fail(target, [k[0].id, k[1].id]);
    expect(cache.get(target)[0].failures).toBe(1);
    now = 2000;
    expect(cache.get(target)).toEqual([]);
  });
});

describe('rate limit', () => {
  test('a neighbour gets its burst, then waits for tokens; others are unaffected', () => {
    let now = 0;
    const limiter = new RateLimiter<string>(1 / 1000, 3, () => now);
    expect([1, 2, 3, 4].map(() => limiter.take('a'))).toEqual([true, true, true, false]);
    expect(limiter.take('b')).toBe(true);
    now = 1000;
    expect(limiter.take('a')).toBe(true);
    expect(limiter.take('a')).toBe(false);
  });
});

describe('clocks (docs/protocol.md 7.6)', () => {
  test('a step of the system clock neither ages nor expires a fresh path; time passing does', () => {
    const base = 1_700_000_000_000;
    let wall = base;
    let mono = 0;
    const pass = (ms: number) => {
      wall += ms;
      mono += ms;
    };
    const steps: number[] = [];
    const now = steadyClock({ wall: () => wall, monotonic: () => mono, onStep: (ms) => steps.push(ms) });
    const cache = new PathCache(60 * 60_000, now);
    const k = [generateAgentKeys(), generateAgentKeys()];
    // entries signed by an agent whose clock is 4 minutes behind ours, valid for 10 of its minutes
    cache.add(target, chain(k, base - 4 * 60_000 + 10 * 60_000));
    pass(1_000);
    wall += 2 * 60 * 60_000; // the system clock steps +2 h
    expect(cache.get(target)).toHaveLength(1);
    expect(steps).toEqual([2 * 60 * 60_000]);
    expect(now()).toBe(base + 1_000);
    // without a step it is the system clock, whatever the step before
    pass(5_000);
    expect(now()).toBe(wall - 2 * 60 * 60_000);
    // the entries' expiry (6 min after the start, by our clock) plus the 5 min skew allowance
    pass(11 * 60_000 - 6_001);
    expect(cache.get(target)).toHaveLength(1);
    pass(1);
    expect(cache.get(target)).toEqual([]);
    expect(steps).toHaveLength(1);
  });
});

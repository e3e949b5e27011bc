import { join } from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import * as openpgp from 'openpgp';
import type { DeliveryEngine } from '../../agent/delivery/engine.ts';
import { AgentDeliveryService, afterDiscovery, resolveAddress } from '../../agent/outbound.ts';
import type { Outbox } from '../../agent/queue/outbox.ts';
import { createTrustStore } from '../../agent/trust/index.ts';
import { asFingerprint, type Fingerprint } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import { toSmtpReply } from '../../gateway/smtp/replies.ts';
import { KithError } from '../../common/errors.ts';
import { openDatabase } from '../../store/db.ts';
import { codeOf } from '../helpers/errors.ts';
import { tempDir } from '../helpers/tmp.ts';

const SELF = asFingerprint('A'.repeat(40));
const BOB = asFingerprint('B0'.repeat(20));
const at = (f: Fingerprint) => `${f.toLowerCase()}@kith`;

describe('which fingerprint addresses need discovery (resolveAddress, afterDiscovery)', () => {
  const bobWithKey = { fingerprint: BOB, email: 'bob@example.org', contact: false, publicKey: 'KEY' };

  test('an unknown fingerprint, or one trusted before its key arrived, is looked up by discovery', () => {
    expect(resolveAddress(at(BOB), SELF, [])).toEqual({ discover: BOB });
    expect(resolveAddress(at(BOB).toUpperCase(), SELF, [{ ...bobWithKey, publicKey: undefined }])).toEqual({
      discover: BOB,
    });
  });

  test('a fingerprint whose key is held is accepted at once, contact or not', () => {
    expect(resolveAddress(at(BOB), SELF, [bobWithKey])).toEqual({
      ok: true,
      fingerprint: BOB,
      email: 'bob@example.org',
    });
  });

  test('a revoked entity and our own fingerprint are refused without asking the network', () => {
    expect(resolveAddress(at(BOB), SELF, [{ ...bobWithKey, revokedAt: 1 }])).toMatchObject({
      ok: false,
      reason: 'unreachable',
    });
    expect(resolveAddress(at(SELF), SELF, [])).toMatchObject({ ok: false, reason: 'unknown' });
  });

  test('an ordinary address of a discovered (not yet written to) entity is still not a contact', () => {
    expect(resolveAddress('bob@example.org', SELF, [bobWithKey])).toMatchObject({
      ok: false,
      reason: 'unknown',
    });
    expect(resolveAddress('bob@example.org', SELF, [{ ...bobWithKey, contact: true }])).toMatchObject({
      ok: true,
      fingerprint: BOB,
    });
  });

  test('after discovery: the key came → accepted; it did not → temporary refusal saying what to do', () => {
    expect(afterDiscovery(BOB, { publicKey: 'KEY', email: '' }, 10_000)).toEqual({
      ok: true,
      fingerprint: BOB,
      email: undefined,
    });
    const refused = afterDiscovery(BOB, undefined, 10_000);
    expect(refused).toMatchObject({ ok: false, reason: 'no-path-yet' });
    expect(!refused.ok && refused.message).toContain('within 10 s; try again later');
    const reply = toSmtpReply(new KithError('ERR_SMTP_RECIPIENT_NO_PATH_YET', 'x'));
    expect(reply.responseCode).toBe(450);
    expect(reply.message.startsWith('4.4.4 ')).toBe(true);
  });
});

describe('TrustStore.addDiscoveredKey', () => {
  const tmp = tempDir('kith-first-contact-');
  afterAll(() => tmp.remove());
  let n = 0;
  const store = () =>
    createTrustStore({ db: openDatabase(join(tmp.path, `t${n++}.db`)), log: silentLogger() });
  const key = async (name: string) =>
    (
      await openpgp.generateKey({
        type: 'ecc',
        curve: 'curve25519Legacy',
        userIDs: [{ name, email: `${name.toLowerCase()}@example.org` }],
        format: 'object',
      })
    ).publicKey;

  test('a key with the asked-for fingerprint becomes a known entity: not trusted, not a contact', async () => {
    const trust = store();
    const bob = await key('Bob');
    const fpr = asFingerprint(bob.getFingerprint());
    const rec = await trust.addDiscoveredKey(bob.write(), fpr);
    expect(rec).toMatchObject({
      fingerprint: fpr,
      email: 'bob@example.org',
      trusted: false,
      contact: false,
      source: 'discovery',
    });
    expect((await trust.publicKey(fpr))?.getFingerprint()).toBe(bob.getFingerprint());
    expect(trust.isTrustedEntity(fpr)).toBe(false);
  });

  test('a key with another fingerprint, or not a key at all, is refused and nothing is stored', async () => {
    const trust = store();
    const eve = await key('Eve');
    expect(await codeOf(trust.addDiscoveredKey(eve.write(), BOB))).toBe('ERR_FINGERPRINT_MISMATCH');
    expect(await codeOf(trust.addDiscoveredKey(Buffer.from('not a key'), BOB))).toBe('ERR_BAD_KEY');
    expect(trust.entities()).toEqual([]);
  });

  test('a user id that the key does not certify itself (attached on the way) is dropped', async () => {
    const trust = store();
    const bob = await key('Bob');
    const eve = await key('Eve');
    const tampered = await openpgp.readKey({ binaryKey: bob.write() });
    // A relay puts Eve's address (with Eve's self-signature) first on Bob's key.
    tampered.users.unshift(eve.users[0]);
    const fpr = asFingerprint(bob.getFingerprint());
    const rec = await trust.addDiscoveredKey(tampered.write(), fpr);
    expect(rec.email).toBe('bob@example.org');
    const stored = await trust.publicKey(fpr);
    expect(stored?.users.map((u) => u.userID?.email)).toEqual(['bob@example.org']);
  });
});

describe('AgentDeliveryService.resolveRecipient for a fingerprint whose key is not held', () => {
  const tmp = tempDir('kith-first-contact-svc-');
  afterAll(() => tmp.remove());

  /** The service over a real trust store; discovery is a stand-in that the test drives. */
  function service(find: (fpr: Fingerprint) => Promise<unknown>, timeoutMs: number) {
    const trust = createTrustStore({
      db: openDatabase(join(tmp.path, `s${Date.now()}${Math.random()}.db`)),
      log: silentLogger(),
    });
    const calls: Fingerprint[] = [];
    const engine = {
      discovery: {
        find: (fpr: Fingerprint) => {
          calls.push(fpr);
          return find(fpr);
        },
      },
    } as unknown as DeliveryEngine;
    const svc = new AgentDeliveryService({
      self: SELF,
      trust,
      engine,
      outbox: undefined as unknown as Outbox,
      log: silentLogger(),
      discoveryTimeoutMs: timeoutMs,
    });
    return { svc, trust, calls };
  }

  test('concurrent RCPTs for one fingerprint share one discovery; the key it stores makes them accepted', async () => {
    const bob = (
      await openpgp.generateKey({
        type: 'ecc',
        curve: 'curve25519Legacy',
        userIDs: [{ email: 'bob@example.org' }],
        format: 'object',
      })
    ).publicKey;
    const fpr = asFingerprint(bob.getFingerprint());
    const { svc, trust, calls } = service(async () => {
      await new Promise((r) => setTimeout(r, 50));
      await trust.addDiscoveredKey(bob.write(), fpr);
    }, 5_000);
    const [a, b] = await Promise.all([svc.resolveRecipient(at(fpr)), svc.resolveRecipient(at(fpr))]);
    expect(a).toEqual({ ok: true, fingerprint: fpr, email: 'bob@example.org' });
    expect(b).toEqual(a);
    expect(calls).toEqual([fpr]);
    // Known now: no second discovery.
    await svc.resolveRecipient(at(fpr));
    expect(calls).toHaveLength(1);
  });

  test('discovery that brings nothing in time: a temporary refusal after the timeout, not later', async () => {
    const { svc } = service(() => new Promise(() => undefined), 300);
    const started = Date.now();
    const r = await svc.resolveRecipient(at(BOB));
    // It came back at all although discovery never answers: the timeout ended the wait.
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(r).toMatchObject({ ok: false, reason: 'no-path-yet' });
  });
});

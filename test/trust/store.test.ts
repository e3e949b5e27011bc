import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { multiaddr } from '@multiformats/multiaddr';
import { createIdentity, type Identity } from '../../agent/identity/identity.ts';
import {
  admit,
  provisionalMayOpen,
  createTrustStore,
  decodeInvitation,
  encodeInvitation,
  revokeAgentCertificate,
  type TrustStore,
} from '../../agent/trust/index.ts';
import { encodeCertificate, TrustStoreView } from '../../agent/trust/routing-view.ts';
import { isKithError } from '../../common/errors.ts';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase, type Db } from '../../store/db.ts';

const dir = mkdtempSync(join(tmpdir(), 'kith-trust-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function db(): Db {
  return openDatabase(join(dir, `t${n++}.db`));
}
async function identity(name: string): Promise<Identity> {
  return createIdentity(db(), { name, email: `${name}@example.org`, passphrase: 'correct horse' });
}
function store(clock: { now: number }): TrustStore {
  return createTrustStore({ db: db(), log: silentLogger(), clock: () => clock.now });
}
function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isKithError(err)) return err.code;
    throw err;
  }
  return 'no error';
}

describe('trust store', () => {
  it('invitations work once, expire, and keep only a hash of the secret', () => {
    const clock = { now: 1_000_000 };
    const trust = store(clock);
    const { secret } = trust.issueInvitation(60_000);
    expect(trust.hasOpenInvitation()).toBe(true);
    const rows = JSON.stringify(
      (trust as unknown as { db: Db }).db.prepare('SELECT * FROM trust_invitation').all(),
    );
    expect(rows).not.toContain(Buffer.from(secret).toString('hex'));
    expect(rows).not.toContain(Buffer.from(secret).toString('base64url'));
    expect(code(() => trust.redeemInvitation(new Uint8Array(16), 'x'))).toBe('ERR_INVITATION_UNKNOWN');
    trust.redeemInvitation(secret, 'first');
    expect(code(() => trust.redeemInvitation(secret, 'second'))).toBe('ERR_INVITATION_USED');
    expect(trust.hasOpenInvitation()).toBe(false);
    const late = trust.issueInvitation(1_000);
    clock.now += 1_000;
    expect(code(() => trust.redeemInvitation(late.secret, 'x'))).toBe('ERR_INVITATION_EXPIRED');
    expect(code(() => trust.issueInvitation(0))).toBe('ERR_BAD_TTL');
  });

  it('answers the questions of the gater and the protocol core', async () => {
    const clock = { now: Date.now() + 60_000 };
    const trust = store(clock);
    const alice = await identity('alice');
    await trust.addEntity(alice.entityPublicArmored, { trusted: true, contact: true, source: 'invitation' });
    await trust.addAgentCertificate(alice.certificate);
    expect(trust.isTrustedEntity(alice.fingerprint)).toBe(true);
    expect(trust.entityOfAgent(alice.agentId)).toBe(alice.fingerprint);
    expect(trust.isTrustedAgent(alice.agentId)).toBe(true);
    expect(trust.admission(alice.agentId)).toBe('trusted');
    const [agent] = trust.certifiedAgents(alice.fingerprint);
    expect(agent.onionKey.equals(alice.onion.publicKey)).toBe(true);
    expect(trust.entity(alice.fingerprint)).toMatchObject({ email: 'alice@example.org', name: 'alice' });

    // An expired certificate no longer admits its agent.
    clock.now += 400 * 86_400_000;
    expect(trust.isTrustedAgent(alice.agentId)).toBe(false);
    expect(trust.certifiedAgents(alice.fingerprint)).toEqual([]);
    clock.now -= 400 * 86_400_000;

    // An entity-signed revocation of one agent; then revoking the whole entity.
    const revocation = await revokeAgentCertificate(alice.entityKey!, alice.agentId);
    expect(await trust.addAgentRevocation(revocation)).toBe(true);
    expect(await trust.addAgentRevocation(revocation)).toBe(false);
    // One already held is not checked again (hellos repeat them all): not even its signature.
    expect(await trust.addAgentRevocation({ ...revocation, signature: 'garbage' })).toBe(false);
    expect(trust.isRevokedAgent(alice.agentId)).toBe(true);
    expect(trust.admission(alice.agentId)).toBe('refused');
    await expect(trust.addAgentCertificate(alice.certificate)).rejects.toMatchObject({
      code: 'ERR_AGENT_REVOKED',
    });
    trust.revoke(alice.fingerprint);
    expect(trust.isTrustedEntity(alice.fingerprint)).toBe(false);
  });

  it('a revocation signed by another entity is rejected', async () => {
    const trust = store({ now: Date.now() + 60_000 });
    const alice = await identity('alice');
    const mallory = await identity('mallory');
    await trust.addEntity(alice.entityPublicArmored, { trusted: true, contact: true, source: 'invitation' });
    await trust.addAgentCertificate(alice.certificate);
    const forged = await revokeAgentCertificate(mallory.entityKey!, alice.agentId);
    const claimed = {
      canonical: forged.canonical.replace(mallory.fingerprint, alice.fingerprint),
      signature: forged.signature,
    };
    await expect(trust.addAgentRevocation(claimed)).rejects.toMatchObject({ code: 'ERR_REVOCATION_INVALID' });
    expect(trust.isTrustedAgent(alice.agentId)).toBe(true);
  });

  it('trust by fingerprint waits for a key with exactly that fingerprint', async () => {
    const trust = store({ now: Date.now() + 60_000 });
    const alice = await identity('alice');
    const mallory = await identity('mallory');
    expect(code(() => trust.trustFingerprint('not a fingerprint'))).toBe('ERR_BAD_FINGERPRINT');
    trust.trustFingerprint(alice.fingerprint.toLowerCase().replace(/(.{4})/g, '$1 '), {
      addresses: ['/dns4/alice.example.org/tcp/4410'],
    });
    expect(trust.awaitingKey()).toEqual([alice.fingerprint]);
    expect(trust.admission(mallory.agentId)).toBe('provisional');
    expect(trust.admission(mallory.agentId, { provisionalOpen: 100, recentFromAddress: 0 })).toBe('refused');
    await expect(
      trust.addEntity(mallory.entityPublicArmored, {
        trusted: true,
        contact: true,
        source: 'fingerprint',
        expect: alice.fingerprint,
      }),
    ).rejects.toMatchObject({ code: 'ERR_FINGERPRINT_MISMATCH' });
    expect(trust.entity(mallory.fingerprint)).toBeUndefined();
    await trust.addEntity(alice.entityPublicArmored, {
      trusted: true,
      contact: true,
      source: 'fingerprint',
      expect: alice.fingerprint,
    });
    await trust.addAgentCertificate(alice.certificate);
    expect(trust.awaitingKey()).toEqual([]);
    expect(trust.isTrustedAgent(mallory.agentId)).toBe(false);
    expect(trust.addressHints(alice.fingerprint)).toEqual(['/dns4/alice.example.org/tcp/4410']);
  });

  it('writing to someone first makes a contact, not a trusted neighbour', async () => {
    const trust = store({ now: Date.now() + 60_000 });
    const bob = await identity('bob');
    const record = await trust.addEntity(bob.entityPublicArmored, {
      trusted: false,
      contact: true,
      source: 'wrote-first',
    });
    expect(record).toMatchObject({ trusted: false, contact: true, email: 'bob@example.org' });
    await trust.addAgentCertificate(bob.certificate);
    expect(trust.isTrustedAgent(bob.agentId)).toBe(false);
  });
});

describe('invitation codes', () => {
  it('round-trip and reject damaged pastes', () => {
    const original = {
      entity: 'A'.repeat(40) as never,
      agent: '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK' as never,
      addresses: [multiaddr('/ip4/127.0.0.1/tcp/4410'), multiaddr('/dns4/home.example.org/tcp/4410')],
      secret: new Uint8Array(16).fill(7),
    };
    const text = encodeInvitation(original);
    const back = decodeInvitation(`  ${text.slice(0, 20)}\n${text.slice(20)} `);
    expect(back.entity).toBe(original.entity);
    expect(back.agent).toBe(original.agent);
    expect(back.addresses.map(String)).toEqual(original.addresses.map(String));
    expect(Buffer.from(back.secret).equals(Buffer.from(original.secret))).toBe(true);
    for (const bad of [text.slice(0, -3), text.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')), 'hello']) {
      expect(code(() => decodeInvitation(bad))).toBe('ERR_INVITATION_MALFORMED');
    }
  });
});

describe('admission decision', () => {
  const limits = { maxOpen: 2, perAddress: 3, windowMs: 60_000 };
  const base = {
    revoked: false,
    certifiedByTrusted: false,
    provisionalOpen: 0,
    recentFromAddress: 0,
    limits,
  };
  it('admits certified agents, lets unknown ones in provisionally within bounds, never a revoked one', () => {
    expect(admit({ ...base, certifiedByTrusted: true })).toBe('trusted');
    // An unknown peer may be a trusted entity's new agent: only its hello can tell.
    expect(admit(base)).toBe('provisional');
    expect(admit({ ...base, provisionalOpen: 2 })).toBe('refused');
    expect(admit({ ...base, recentFromAddress: 3 })).toBe('refused');
    expect(admit({ ...base, certifiedByTrusted: true, provisionalOpen: 2, recentFromAddress: 3 })).toBe(
      'trusted',
    );
    expect(admit({ ...base, revoked: true, certifiedByTrusted: true })).toBe('refused');
    expect(admit({ ...base, revoked: true })).toBe('refused');
  });

  it('a provisional peer may open hello, and invite while an invitation is open; its other streams wait for the verdict', () => {
    const peer = { trusted: false, provisional: true, openInvitation: false };
    expect(provisionalMayOpen({ ...peer, protocol: 'hello' })).toBe('open');
    expect(provisionalMayOpen({ ...peer, protocol: 'invite' })).toBe('refuse');
    expect(provisionalMayOpen({ ...peer, protocol: 'invite', openInvitation: true })).toBe('open');
    // Anything else waits, unread, until the peer is promoted or cut off.
    expect(provisionalMayOpen({ ...peer, protocol: 'other', openInvitation: true })).toBe('wait');
    expect(provisionalMayOpen({ ...peer, provisional: false, protocol: 'hello' })).toBe('refuse');
    expect(provisionalMayOpen({ ...peer, provisional: false, protocol: 'other' })).toBe('refuse');
    expect(provisionalMayOpen({ ...peer, trusted: true, provisional: false, protocol: 'other' })).toBe(
      'open',
    );
  });
});

describe('trust view of the protocol core (agent/trust/routing-view.ts)', () => {
  it('a certified agent of a known entity met in a path record is kept, so later mail is wrapped for it', async () => {
    const alice = await identity('alice');
    const bob = await identity('bob');
    const trust = store({ now: Date.now() });
    await trust.addEntity(bob.entityPublicArmored, { trusted: false, contact: true, source: 'fingerprint' });
    expect(trust.agentsOf(bob.fingerprint)).toHaveLength(0);
    const view = new TrustStoreView(trust, alice);
    const cert = encodeCertificate(bob.certificate);
    // The wrong onion key: not that agent's certificate, and nothing is kept.
    expect(await view.verifyCertificate(bob.fingerprint, bob.agentId, Buffer.alloc(32), cert)).toBe(false);
    expect(trust.agentsOf(bob.fingerprint)).toHaveLength(0);
    expect(await view.verifyCertificate(bob.fingerprint, bob.agentId, bob.onion.publicKey, cert)).toBe(true);
    expect(trust.agentsOf(bob.fingerprint).map((a) => a.agentId)).toEqual([bob.agentId]);
    // A verdict is about one claim: the same certificate under another onion key is still refused.
    expect(await view.verifyCertificate(bob.fingerprint, bob.agentId, Buffer.alloc(32, 1), cert)).toBe(false);
  });
});

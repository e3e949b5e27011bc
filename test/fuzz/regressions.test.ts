// Inputs the fuzzer found that crashed a decoder (a TypeError or RangeError instead of a refusal),
// each kept as it was found, so the fix stays.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { silentLogger } from '../../common/logger.ts';
import { acceptHello, buildHello } from '../../agent/links/hello.ts';
import { acceptInviterReply, type InviteReply } from '../../agent/links/invite.ts';
import { parseBindingResponse } from '../../agent/nat/stun-codec.ts';
import { signAddressRecord, verifyAddressRecord } from '../../agent/reachability/records.ts';
import { trustFixture, type TrustFixture } from './targets/trust.ts';

let f: TrustFixture;
beforeAll(async () => {
  f = await trustFixture();
});
afterAll(() => f.stop());

describe('fuzz regressions', () => {
  test('stun: a binding response whose XOR-MAPPED-ADDRESS is cut short is no answer (was RangeError)', () => {
    // Found: an IPv6 family byte with a 20-byte attribute length but 12 bytes left in the packet.
    const packet = Buffer.from([
      1, 1, 0, 32, 33, 18, 164, 66, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 32, 0, 20, 0, 2, 33, 27, 1, 19,
      169, 250, 3, 3,
    ]);
    expect(parseBindingResponse(packet)).toBeUndefined();
    // And a 2-byte attribute (family but no port).
    const short = Buffer.from([1, 1, 0, 8, 33, 18, 164, 66, ...Array(12).fill(3), 0, 32, 0, 2, 0, 1, 0, 0]);
    expect(parseBindingResponse(short)).toBeUndefined();
  });

  test('hello: siblings or revocations that are not lists are a malformed hello (was TypeError after storing)', async () => {
    const valid = buildHello(f.P.identity, f.P.trust);
    for (const bad of [{ revocations: 5 }, { siblings: {} }, { siblings: true }, { revocations: 'x' }]) {
      await expect(
        acceptHello(f.L.trust, f.P.identity.agentId, { ...valid, ...bad } as never, silentLogger()),
      ).rejects.toMatchObject({ code: 'ERR_PROTOCOL' });
    }
    // Refused before anything was checked or stored: P's agent is still unknown to L.
    expect(f.L.trust.isTrustedAgent(f.P.identity.agentId)).toBe(false);
  });

  test('invitation reply: a refusal code the inviter made up becomes ERR_INVITATION_REFUSED; a non-object reply is ERR_PROTOCOL', async () => {
    const code = {
      entity: f.P.identity.fingerprint,
      agent: f.P.identity.agentId,
      addresses: [],
      secret: new Uint8Array(16),
    };
    const reply = (r: unknown) => acceptInviterReply(f.L.trust, code, r as InviteReply, silentLogger());
    await expect(reply({ v: 1, refused: 'ERR_INVIPATION_USED', message: 'x' })).rejects.toMatchObject({
      code: 'ERR_INVITATION_REFUSED',
    });
    await expect(reply({ v: 1, refused: 'ERR_INVITATION_USED', message: 'x' })).rejects.toMatchObject({
      code: 'ERR_INVITATION_USED',
    });
    for (const bad of [5, null, 'refused', []])
      await expect(reply(bad)).rejects.toMatchObject({
        code: expect.stringMatching(/^ERR_(PROTOCOL|CERT_MALFORMED)$/),
      });
  });

  test('address record: a signature of the wrong length is a bad signature; an agent id that is no peer id is malformed (were TypeError / Error)', async () => {
    const now = Date.now();
    const record = await signAddressRecord(f.P.identity.agentKey, {
      agent: f.P.identity.agentId,
      entity: f.P.identity.fingerprint,
      addresses: ['/ip4/192.0.2.1/tcp/4001'],
      seq: now,
    });
    await expect(
      verifyAddressRecord({ ...record, signature: 'AAAA' }, { now, maxAgeMs: 60_000 }),
    ).rejects.toMatchObject({ code: 'ERR_RECORD_SIGNATURE' });
    // Passes the agent-id syntax check, but its multihash has the wrong length.
    const notPeer = record.canonical.replace(f.P.identity.agentId, `${f.P.identity.agentId.slice(0, -1)}`);
    await expect(
      verifyAddressRecord({ ...record, canonical: notPeer }, { now, maxAgeMs: 60_000 }),
    ).rejects.toMatchObject({
      code: 'ERR_RECORD_MALFORMED',
    });
  });
});

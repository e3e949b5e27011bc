import { describe, expect, test } from '@jest/globals';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { isKithError } from '../../common/errors.ts';
import { asAgentId } from '../../common/ids.ts';
import { rawX25519Public } from '../../agent/identity/identity.ts';
import {
  SignatureVerifier,
  agentIdFromPublic,
  agentKeysFromIdentity,
  generateAgentKeys,
  publicFromAgentId,
  signWith,
} from '../../agent/onion/keys.ts';
import {
  HEADER_BYTES,
  MAX_HOPS,
  buildOnion,
  peelOnion,
  type HopInstruction,
} from '../../agent/onion/layers.ts';
import { ReportKind, openReport, sealReport } from '../../agent/reports/report.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isKithError(err) ? err.code : String(err);
  }
  return undefined;
}

describe('agent keys', () => {
  test('agent ids are libp2p peer ids and carry their Ed25519 key', async () => {
    const key = await generateKeyPair('Ed25519');
    const peerId = peerIdFromPrivateKey(key).toString();
    expect(agentIdFromPublic(key.publicKey.raw)).toBe(peerId);
    expect(publicFromAgentId(asAgentId(peerId)).equals(Buffer.from(key.publicKey.raw))).toBe(true);
    const onion = generateKeyPairSync('x25519');
    const keys = agentKeysFromIdentity({
      agentId: asAgentId(peerId),
      agentKey: key,
      onion: { publicKey: rawX25519Public(onion.publicKey), privateKey: onion.privateKey },
    });
    const sig = signWith(keys, Buffer.from('x'));
    expect(new SignatureVerifier().verifyByAgent(keys.id, Buffer.from('x'), sig)).toBe(true);
    // libp2p verifies our node:crypto signature too: same key, same algorithm.
    expect(await key.publicKey.verify(Buffer.from('x'), sig)).toBe(true);
  });
});

describe('onion layers', () => {
  const expiresAt = Date.now() + 60_000;
  function path(n: number) {
    const keys = Array.from({ length: n }, () => generateAgentKeys());
    const hops = keys.map((k, i) => {
      const instruction: HopInstruction =
        i < n - 1
          ? { kind: 'forward', next: keys[i + 1].signPublic, report: true, expiresAt }
          : { kind: 'deliver', report: true, expiresAt };
      return { onionPublic: k.onionPublic, instruction };
    });
    return { keys, hops };
  }

  test('each hop peels its layer, learns only its next hop, and sees a header of the same size', () => {
    const { keys, hops } = path(4);
    const body = randomBytes(4096);
    const packet = buildOnion(hops, body);
    let header = packet.header;
    let current = packet.body;
    const seen: Buffer[] = [];
    for (let i = 0; i < keys.length; i++) {
      expect(header.length).toBe(HEADER_BYTES);
      expect(current.length).toBe(body.length);
      seen.push(header);
      const peeled = peelOnion(keys[i].onionPrivate, keys[i].onionPublic, header, current);
      if (i < keys.length - 1) {
        expect(peeled.instruction.kind).toBe('forward');
        if (peeled.instruction.kind === 'forward')
          expect(peeled.instruction.next.equals(keys[i + 1].signPublic)).toBe(true);
        // Until the last hop, the body is still wrapped: nobody on the way sees the plaintext.
        expect(peeled.body.equals(body)).toBe(false);
      } else {
        expect(peeled.instruction.kind).toBe('deliver');
        expect(peeled.body.equals(body)).toBe(true);
      }
      expect(peeled.secret.reportKey.equals(packet.secrets[i].reportKey)).toBe(true);
      header = peeled.header;
      current = peeled.body;
    }
    expect(new Set(seen.map((h) => h.toString('hex'))).size).toBe(4);
  });

  test('a one-hop and a full-length path look the same to the first hop', () => {
    const short = buildOnion(path(1).hops, randomBytes(1024));
    const long = buildOnion(path(MAX_HOPS).hops, randomBytes(1024));
    expect(short.header.length).toBe(long.header.length);
    expect(short.body.length).toBe(long.body.length);
  });

  test('a layer for someone else, or altered, does not decrypt; too long a path is refused', () => {
    const { keys, hops } = path(2);
    const packet = buildOnion(hops, randomBytes(1024));
    expect(
      codeOf(() => peelOnion(keys[1].onionPrivate, keys[1].onionPublic, packet.header, packet.body)),
    ).toBe('ERR_ONION_UNDECRYPTABLE');
    const altered = Buffer.from(packet.header);
    altered[40] ^= 1;
    expect(codeOf(() => peelOnion(keys[0].onionPrivate, keys[0].onionPublic, altered, packet.body))).toBe(
      'ERR_ONION_UNDECRYPTABLE',
    );
    expect(
      codeOf(() =>
        peelOnion(keys[0].onionPrivate, keys[0].onionPublic, packet.header.subarray(1), packet.body),
      ),
    ).toBe('ERR_ONION_MALFORMED');
    expect(codeOf(() => buildOnion(path(MAX_HOPS + 1).hops, randomBytes(1024)))).toBe('ERR_PATH_TOO_LONG');
  });
});

describe('progress reports', () => {
  test('only the sender reads a report, and only the right hop can have signed it', () => {
    const hop = generateAgentKeys();
    const other = generateAgentKeys();
    const secret = { reportKey: randomBytes(32), reportTag: randomBytes(32) };
    const verifier = new SignatureVerifier();
    const sealed = sealReport(hop, secret, { kind: ReportKind.forwarded, at: 1234, value: 7 });
    expect(openReport(verifier, hop.signPublic, secret, sealed)).toEqual({
      kind: ReportKind.forwarded,
      at: 1234,
      value: 7,
    });
    expect(
      openReport(verifier, hop.signPublic, { ...secret, reportKey: randomBytes(32) }, sealed),
    ).toBeUndefined();
    expect(codeOf(() => openReport(verifier, other.signPublic, secret, sealed))).toBe('ERR_REPORT_FORGED');
  });
});

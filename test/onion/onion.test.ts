import { describe, expect, test } from '@jest/globals';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
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
  SLOT_BYTES,
  buildOnion,
  encodeInstruction,
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

function zeroBytes(buf: Buffer): number {
  return buf.reduce((n, b) => n + (b === 0 ? 1 : 0), 0);
}

/**
 * A statistical check that fails on structure (zero or repeated padding, fixed filler) and passes on
 * random bytes: incompressible, and nibble frequencies within a chi-square bound (15 degrees of
 * freedom; 60 is exceeded by random data with probability below 1e-6).
 */
function looksRandom(buf: Buffer): boolean {
  if (deflateRawSync(buf, { level: 9 }).length < buf.length) return false;
  const counts = new Array<number>(16).fill(0);
  for (const b of buf) {
    counts[b >> 4]++;
    counts[b & 15]++;
  }
  const expected = (buf.length * 2) / 16;
  const chi = counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
  return chi < 60;
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

  test('no hop can tell its position, or whether the next hop is the last, from the bytes it sees', () => {
    // At every hop of every path length the hop sees: the header it received, its own decrypted
    // instruction, and the header it hands on (the rest, XORed with its keystream, plus a random
    // slot). If the sender padded short paths with zeros or any fixed filler, the last hops would
    // find it in what they peel; if slot sizes varied, the received header would differ in length.
    const views: { position: number; hops: number; seen: Buffer }[] = [];
    for (let n = 1; n <= MAX_HOPS; n++) {
      const { keys, hops } = path(n);
      const packet = buildOnion(hops, randomBytes(1024));
      let header = packet.header;
      let body = packet.body;
      for (let i = 0; i < n; i++) {
        expect(header.length).toBe(HEADER_BYTES);
        expect(body.length).toBe(packet.body.length);
        const peeled = peelOnion(keys[i].onionPrivate, keys[i].onionPublic, header, body);
        expect(peeled.header.length).toBe(HEADER_BYTES);
        // What it received beyond its own slot, and what it hands on, both look like random bytes.
        expect(looksRandom(header.subarray(SLOT_BYTES))).toBe(true);
        expect(looksRandom(peeled.header)).toBe(true);
        views.push({ position: i, hops: n, seen: Buffer.from(peeled.header) });
        header = peeled.header;
        body = peeled.body;
      }
    }
    // The hop just before the last and a hop with many more to come see headers of the same kind:
    // every 96-byte slot of what they hand on is random, none repeats, none is mostly zero.
    const beforeLast = views.filter((v) => v.position === v.hops - 2);
    const early = views.filter((v) => v.position === 0 && v.hops === MAX_HOPS);
    for (const v of [...beforeLast, ...early]) {
      const slots = Array.from({ length: MAX_HOPS }, (_, k) =>
        v.seen.subarray(k * SLOT_BYTES, (k + 1) * SLOT_BYTES).toString('hex'),
      );
      expect(new Set(slots).size).toBe(MAX_HOPS);
      for (const slot of slots) expect(zeroBytes(Buffer.from(slot, 'hex'))).toBeLessThan(8);
    }
    // The instruction block is one size for "forward" and "deliver" alike.
    const forward = encodeInstruction({ kind: 'forward', next: randomBytes(32), report: true, expiresAt });
    const deliver = encodeInstruction({ kind: 'deliver', report: true, expiresAt });
    expect(forward.length).toBe(deliver.length);
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

// Fuzz targets of what links carry before and beside the protocol core: link frames and their
// JSON messages, the hello, the invitation code and the invitation exchange, address records,
// agent certificates inside path records, the OpenPGP-sealed manifest, STUN packets and the
// header of a received file. Real identities (OpenPGP keys) and a real trust store on SQLite.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { multiaddr } from '@multiformats/multiaddr';
import { silentLogger } from '../../../common/logger.ts';
import { createIdentity, type Identity } from '../../../agent/identity/identity.ts';
import { encodeFrame, FrameDecoder, readJson } from '../../../agent/links/frames.ts';
import { acceptHello, buildHello, type HelloMessage } from '../../../agent/links/hello.ts';
import {
  acceptInviterReply,
  redeemInvitation,
  type InviteReply,
  type InviteRequest,
} from '../../../agent/links/invite.ts';
import {
  createTrustStore,
  decodeInvitation,
  encodeInvitation,
  type TrustStore,
} from '../../../agent/trust/index.ts';
import { encodeCertificate, TrustStoreView } from '../../../agent/trust/routing-view.ts';
import {
  signAddressRecord,
  verifyAddressRecord,
  type SignedAddressRecord,
} from '../../../agent/reachability/records.ts';
import { openpgpCodec } from '../../../agent/payload/codec.ts';
import {
  buildBindingRequest,
  buildBindingResponse,
  parseBindingRequest,
  parseBindingResponse,
} from '../../../agent/nat/stun-codec.ts';
import { parseFileHeader, FILE_MAGIC } from '../../../agent/files.ts';
import { openDatabase } from '../../../store/db.ts';
import { bytesInput, jsonInput, REJECTED, textInput, type Target } from '../harness.ts';

interface Party {
  identity: Identity;
  trust: TrustStore;
}

export interface TrustFixture {
  /** L is the agent under attack; P a peer whose entity L trusts. */
  L: Party;
  P: Party;
  stop(): void;
}

export async function trustFixture(): Promise<TrustFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'kith-fuzz-'));
  const log = silentLogger();
  const party = async (name: string): Promise<Party> => {
    const db = openDatabase(join(dir, `${name}.db`));
    const identity = await createIdentity(db, {
      name,
      email: `${name}@fuzz.kith`,
      passphrase: 'fuzz fuzz fuzz',
    });
    return { identity, trust: createTrustStore({ db, log }) };
  };
  const L = await party('lena');
  const P = await party('piet');
  await L.trust.addEntity(P.identity.entityPublicArmored, {
    trusted: true,
    contact: true,
    source: 'fingerprint',
  });
  await P.trust.addEntity(L.identity.entityPublicArmored, {
    trusted: true,
    contact: true,
    source: 'fingerprint',
  });
  return { L, P, stop: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Link frames: any bytes, cut into any chunks; the frames must not depend on where the cuts are. */
function linkFramesTarget(): Target<{ bytes: Buffer; cuts: number[] }> {
  const stream = Buffer.concat([
    encodeFrame(Buffer.from('{"v":1}')),
    encodeFrame(Buffer.alloc(300, 7)),
    encodeFrame(Buffer.alloc(0)),
  ]);
  const decodeAll = (bytes: Buffer, cuts: number[]): Buffer[] => {
    const decoder = new FrameDecoder(64 * 1024);
    const frames: Buffer[] = [];
    let at = 0;
    for (const cut of [...cuts.map((c) => c % (bytes.length + 1))]
      .sort((a, b) => a - b)
      .concat(bytes.length)) {
      for (const f of decoder.push(bytes.subarray(at, cut))) frames.push(Buffer.from(f));
      at = Math.max(at, cut);
    }
    return frames;
  };
  return {
    name: 'link-frames',
    input: fc.record({ bytes: bytesInput([stream], 1024), cuts: fc.array(fc.nat(), { maxLength: 8 }) }),
    run: ({ bytes, cuts }) => ({ whole: decodeAll(bytes, []), cut: decodeAll(bytes, cuts) }),
    forged(_input, decoded) {
      const d = decoded as { whole: Buffer[]; cut: Buffer[] };
      const same = d.whole.length === d.cut.length && d.whole.every((f, i) => f.equals(d.cut[i]));
      return same ? undefined : 'the frames depend on how the bytes were chunked';
    },
  };
}

/** One JSON frame (hello, invitation, address messages) as readJson reads it. */
function jsonFrameTarget(): Target<Buffer> {
  return {
    name: 'json-frame',
    input: bytesInput(
      [Buffer.from('{"v":1,"refused":"ERR_NOT_TRUSTED"}'), Buffer.from('[1,2,{"a":null}]')],
      512,
    ),
    async run(bytes) {
      const frames = (async function* () {
        yield new Uint8Array(bytes);
      })();
      return readJson(frames);
    },
  };
}

function helloTarget(f: TrustFixture): Target<unknown> {
  const valid = buildHello(f.P.identity, f.P.trust);
  const log = silentLogger();
  return {
    name: 'hello',
    input: jsonInput([valid]),
    run: (hello) => acceptHello(f.L.trust, f.P.identity.agentId, hello as HelloMessage, log),
    forged(hello) {
      // Accepted: the certificate it showed must be P's own, unaltered.
      const cert = (hello as HelloMessage).certificate;
      return cert.canonical === valid.certificate.canonical
        ? undefined
        : 'an altered agent certificate was accepted';
    },
  };
}

function inviteRequestTarget(f: TrustFixture): Target<unknown> {
  const log = silentLogger();
  const seeds: InviteRequest[] = [0, 1].map(() => ({
    v: 1,
    secret: Buffer.from(f.L.trust.issueInvitation(3_600_000).secret).toString('base64url'),
    hello: buildHello(f.P.identity, f.P.trust),
  }));
  return {
    name: 'invite-request',
    input: jsonInput(seeds),
    run: (request) => redeemInvitation(f.L.trust, f.P.identity.agentId, request as InviteRequest, log),
    forged(request) {
      const cert = (request as InviteRequest).hello.certificate;
      return cert.canonical === seeds[0].hello.certificate.canonical
        ? undefined
        : 'an altered agent certificate was accepted';
    },
  };
}

function inviteReplyTarget(f: TrustFixture): Target<unknown> {
  const log = silentLogger();
  const code = {
    entity: f.P.identity.fingerprint,
    agent: f.P.identity.agentId,
    addresses: [],
    secret: new Uint8Array(16),
  };
  const seeds: InviteReply[] = [
    { v: 1, hello: buildHello(f.P.identity, f.P.trust) },
    { v: 1, refused: 'ERR_INVITATION_USED', message: 'used' },
  ];
  return {
    name: 'invite-reply',
    input: jsonInput(seeds),
    run: (reply) => acceptInviterReply(f.L.trust, code, reply as InviteReply, log),
  };
}

function invitationCodeTarget(f: TrustFixture): Target<string> {
  const code = {
    entity: f.P.identity.fingerprint,
    agent: f.P.identity.agentId,
    addresses: [multiaddr('/ip4/127.0.0.1/tcp/4001'), multiaddr('/dns4/example.org/tcp/443/wss')],
    secret: new Uint8Array(16).fill(9),
  };
  return {
    name: 'invitation-code',
    input: textInput([encodeInvitation(code)], 400),
    run: (text) => decodeInvitation(text),
  };
}

async function addressRecordTarget(f: TrustFixture): Promise<Target<unknown>> {
  const now = Date.now();
  const record = await signAddressRecord(f.P.identity.agentKey, {
    agent: f.P.identity.agentId,
    entity: f.P.identity.fingerprint,
    addresses: ['/ip4/192.0.2.1/tcp/4001', '/dns4/kith.example.org/tcp/443'],
    seq: now,
  });
  return {
    name: 'address-record',
    input: jsonInput([record]),
    run: (r) => verifyAddressRecord(r as SignedAddressRecord, { now, maxAgeMs: 3_600_000 }),
    forged(r) {
      return (r as SignedAddressRecord).canonical === record.canonical
        ? undefined
        : 'an altered address record verified';
    },
  };
}

/** The terminal's certificate in a path record, checked against the entity key (OpenPGP). */
function pathCertificateTarget(f: TrustFixture): Target<Buffer> {
  const view = new TrustStoreView(f.L.trust, f.L.identity);
  const cert = encodeCertificate(f.P.identity.certificate);
  const onionKey = f.P.identity.onion.publicKey;
  return {
    name: 'path-certificate',
    input: bytesInput([cert], 1024),
    async run(bytes) {
      const ok = await view.verifyCertificate(
        f.P.identity.fingerprint,
        f.P.identity.agentId,
        onionKey,
        bytes,
      );
      return ok === true ? bytes : REJECTED;
    },
    forged(bytes) {
      // Only the certificate text is signed; the armor around the signature may vary.
      const text = bytes.toString('utf8');
      return text.startsWith(f.P.identity.certificate.canonical)
        ? undefined
        : 'an altered certificate verified';
    },
  };
}

/** The sealed manifest as the recipient opens it (OpenPGP: decrypt with our key, verify the sender). */
async function manifestOpenTarget(f: TrustFixture): Promise<Target<Buffer>> {
  const codecOf = (self: Party, other: Party) =>
    openpgpCodec({
      entityKey: self.identity.entityKey,
      publicKey: async (fp) => (fp === other.identity.fingerprint ? self.trust.publicKey(fp) : undefined),
    });
  const sender = codecOf(f.P, f.L);
  const receiver = codecOf(f.L, f.P);
  const plain = Buffer.from('{"v":1,"a manifest":"of sorts"}');
  const sealed = [await sender.seal(plain, f.L.identity.fingerprint)];
  return {
    name: 'manifest-open',
    input: bytesInput(sealed, 1024),
    run: (bytes) => receiver.open(bytes),
    forged(_bytes, opened) {
      const o = opened as { plaintext: Buffer; verified: boolean };
      // A verified result must be what the sender signed.
      return !o.verified || o.plaintext.equals(plain) ? undefined : 'an altered sealed manifest verified';
    },
  };
}

function stunTarget(): Target<Buffer> {
  const tx = Buffer.alloc(12, 3);
  const seeds = [
    buildBindingRequest(tx),
    buildBindingResponse(tx, '192.0.2.7', 4001),
    buildBindingResponse(tx, '2001:db8::1', 9),
  ];
  return {
    name: 'stun',
    input: bytesInput(seeds, 256),
    run: (packet) => ({ request: parseBindingRequest(packet), response: parseBindingResponse(packet) }),
  };
}

function fileHeaderTarget(): Target<Buffer> {
  const seed = Buffer.concat([
    Buffer.from(FILE_MAGIC),
    Buffer.from('{"name":"../../etc/passwd","size":12}\n'),
    Buffer.alloc(12),
  ]);
  return {
    name: 'file-header',
    input: bytesInput([seed], 512),
    run: (bytes) => parseFileHeader(bytes) ?? REJECTED,
    forged(_bytes, decoded) {
      const name = (decoded as { header: { name: string } }).header.name;
      return name.includes('/') ? `a received file would be saved as ${name}` : undefined;
    },
  };
}

export async function trustTargets(f: TrustFixture): Promise<Target<never>[]> {
  return [
    linkFramesTarget(),
    jsonFrameTarget(),
    helloTarget(f),
    inviteRequestTarget(f),
    inviteReplyTarget(f),
    invitationCodeTarget(f),
    await addressRecordTarget(f),
    pathCertificateTarget(f),
    await manifestOpenTarget(f),
    stunTarget(),
    fileHeaderTarget(),
  ] as Target<never>[];
}

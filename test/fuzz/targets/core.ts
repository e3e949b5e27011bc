// Fuzz targets of the protocol core: frames a neighbour sends (onion packets, progress reports,
// complaints, discovery requests and answers with their path records) and what the recipient
// finds inside (delivery units, manifests, chunks).
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { silentLogger } from '../../../common/logger.ts';
import type { AgentId, Fingerprint } from '../../../common/ids.ts';
import {
  decodeComplaint,
  decodeOnion,
  decodeReport,
  encodeComplaint,
  encodeReport,
  hopDigest,
  linkId,
} from '../../../agent/delivery/frames.ts';
import { peelOnion, SLOT_BYTES } from '../../../agent/onion/layers.ts';
import { FrameType, WIRE_VERSION } from '../../../agent/onion/wire.ts';
import { openReport, ReportKind, sealReport, type Report } from '../../../agent/reports/report.ts';
import {
  decodePath,
  decodePathAt,
  encodePath,
  signRelayEntry,
  terminalEntry,
  verifyPath,
  type PathEntry,
} from '../../../agent/routing/path.ts';
import { decodeKeyField, Discovery } from '../../../agent/routing/discovery.ts';
import { decodeUnit, encodeUnit } from '../../../agent/payload/unit.ts';
import { decodeManifest, encodeManifest, type Manifest } from '../../../agent/payload/manifest.ts';
import { openChunk, sealChunk } from '../../../agent/payload/chunks.ts';
import type { Transport } from '../../../agent/transport.ts';
import { bytesInput, REJECTED, type Target } from '../harness.ts';
import { coreFixture } from '../fixture.ts';

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;

function onionTarget(): Target<Buffer> {
  const f = coreFixture();
  return {
    name: 'onion-frame',
    input: bytesInput(
      f.onions.map((o) => o.frame),
      4096,
    ),
    // What a relay does with a frame from a neighbour, up to peeling (agent/delivery/relay.ts onOnion).
    run(frame) {
      const { header, body, signature } = decodeOnion(frame);
      if (!f.verifier.verifyByAgent(f.S.id, hopDigest(f.R.signPublic, header, body), signature))
        return REJECTED;
      const peeled = peelOnion(f.R.onionPrivate, f.R.onionPublic, header, body);
      return { header, body, signature, peeled };
    },
    forged(_frame, decoded) {
      const d = decoded as { header: Buffer; body: Buffer; signature: Buffer };
      const original = f.onions.some(
        (o) => same(o.header, d.header) && same(o.body, d.body) && same(o.signature, d.signature),
      );
      return original ? undefined : 'an altered onion packet passed the hop signature check';
    },
  };
}

/** A neighbour we trust may sign anything: the layer itself must refuse what was not sealed to us. */
function onionLayerTarget(): Target<{ header: Buffer; body: Buffer }> {
  const f = coreFixture();
  const headers = f.onions.map((o) => o.header);
  return {
    name: 'onion-layer',
    input: fc.record({
      header: bytesInput(headers, 1024),
      body: fc.constantFrom(...f.onions.map((o) => o.body)),
    }),
    run({ header, body }) {
      return peelOnion(f.R.onionPrivate, f.R.onionPublic, header, body);
    },
    forged({ header }) {
      // The first slot (ephemeral key, sealed instruction, tag) is authenticated.
      const slot = header.subarray(0, SLOT_BYTES);
      return headers.some((h) => same(h.subarray(0, SLOT_BYTES), slot))
        ? undefined
        : 'an altered onion slot opened';
    },
  };
}

function reportTarget(): Target<Buffer> {
  const f = coreFixture();
  const secret = f.onions[0].secrets[0];
  const reports: Report[] = [
    { kind: ReportKind.forwarded, at: f.now, value: 0 },
    { kind: ReportKind.chunkAck, at: f.now + 5, value: 7 },
  ];
  const link = linkId(f.onions[0].header);
  const frames = reports.map((r) => encodeReport(link, sealReport(f.R, secret, r)));
  return {
    name: 'report-frame',
    input: bytesInput(frames, 512),
    // The sender's side: the frame, then the report opened with the hop's secret (sender.ts).
    run(frame) {
      const { sealed } = decodeReport(frame);
      return openReport(f.verifier, f.R.signPublic, secret, sealed) ?? REJECTED;
    },
    forged(_frame, decoded) {
      const r = decoded as Report;
      return reports.some((o) => o.kind === r.kind && o.at === r.at && o.value === r.value)
        ? undefined
        : 'an altered progress report opened';
    },
  };
}

function complaintTarget(): Target<Buffer> {
  return {
    name: 'complaint-frame',
    input: bytesInput([encodeComplaint(randomBytes(16).toString('hex'))], 64),
    run: (frame) => decodeComplaint(frame),
  };
}

/** S's view of a path R -> D for D's entity, as R would answer S. */
function pathSeeds(): { entries: PathEntry[]; bytes: Buffer }[] {
  const f = coreFixture();
  const target = f.entityOf.D;
  const cert = f.world.agentsOf(target)[0];
  const expires = f.now + 600_000;
  const terminal = terminalEntry(
    { agent: f.D.id, signPublic: f.D.signPublic, onionKey: f.D.onionPublic, certificate: cert.certificate },
    target,
    expires,
  );
  const relay = signRelayEntry(
    f.R,
    f.world.agentsOf(f.entityOf.R)[0].certificate,
    f.D.signPublic,
    target,
    expires,
  );
  return [[relay, terminal], [terminal]].map((entries) => ({ entries, bytes: encodePath(entries) }));
}

/** What a path's signatures and certificate vouch for (the terminal's `next` and expiry are not signed). */
function signedView(entries: PathEntry[]): string {
  return entries
    .map((e) =>
      e.kind === 'relay'
        ? encodePath([e]).toString('hex')
        : [e.agent, e.onionKey.toString('hex'), e.target, Buffer.from(e.certificate).toString('hex')].join(
            '|',
          ),
    )
    .join('/');
}

function pathTarget(): Target<Buffer> {
  const f = coreFixture();
  const seeds = pathSeeds();
  const views = new Set(seeds.map((s) => signedView(s.entries)));
  return {
    name: 'path-record',
    input: bytesInput(
      seeds.map((s) => s.bytes),
      2048,
    ),
    async run(bytes) {
      const entries = decodePath(bytes);
      const from = entries[0].agent === f.D.id ? f.D.id : f.R.id;
      await verifyPath(entries, {
        target: f.entityOf.D,
        self: f.S.id,
        from,
        trust: f.trustS,
        verifier: f.verifier,
        now: f.now,
        requireCertified: true,
      });
      return entries;
    },
    forged(_bytes, decoded) {
      return views.has(signedView(decoded as PathEntry[])) ? undefined : 'an altered path record verified';
    },
  };
}

/** A discovery answer's layout after the query id: path record, then the optional entity key field. */
function discoveryAnswerTarget(): Target<Buffer> {
  const seeds = pathSeeds();
  const queryId = randomBytes(16);
  const head = Buffer.from([WIRE_VERSION, FrameType.discoverResponse]);
  const key = randomBytes(300);
  const keyField = Buffer.concat([Buffer.from([key.length >> 8, key.length & 0xff]), key]);
  const frames = seeds.flatMap((s) => [
    Buffer.concat([head, queryId, s.bytes]),
    Buffer.concat([head, queryId, s.bytes, keyField]),
  ]);
  return {
    name: 'discovery-answer',
    input: bytesInput(frames, 4096),
    run(frame) {
      const { entries, end } = decodePathAt(frame, 18);
      return { entries, key: decodeKeyField(frame, end) };
    },
  };
}

/** The whole discovery handler of R (requests and answers), as a neighbour's frames reach it. */
function discoveryHandlerTarget(): Target<Buffer> {
  const f = coreFixture();
  const transport: Transport = {
    self: f.R.id,
    neighbours: () => [f.S.id, f.D.id],
    send: async () => undefined,
    onFrame: () => undefined,
    onLinkChange: () => undefined,
  };
  const discovery = new Discovery({
    transport,
    keys: f.R,
    trust: f.trustR,
    verifier: f.verifier,
    count: () => undefined,
    logger: silentLogger(),
    now: () => f.now,
    options: { maxHops: 8, perNeighbourPerMinute: 1e12, cacheMs: 600_000, timeoutMs: 1000 },
  });
  const request = (target: Fingerprint, flags?: number): Buffer =>
    Buffer.concat([
      Buffer.from([WIRE_VERSION, FrameType.discoverRequest]),
      randomBytes(16),
      Buffer.from(target, 'hex'),
      Buffer.from(flags === undefined ? [4, 1] : [4, 1, flags]),
    ]);
  const answers = pathSeeds().map((s) =>
    Buffer.concat([Buffer.from([WIRE_VERSION, FrameType.discoverResponse]), randomBytes(16), s.bytes]),
  );
  const seeds = [request(f.entityOf.D), request(f.entityOf.D, 1), request(f.entityOf.S), ...answers];
  return {
    name: 'discovery-handler',
    input: bytesInput(seeds, 2048),
    run: (frame) => discovery.handle(f.S.id as AgentId, frame),
  };
}

function unitTarget(): Target<Buffer> {
  const units = [
    encodeUnit({ kind: 'manifest', id: randomBytes(16), sealed: randomBytes(300) }),
    encodeUnit({ kind: 'chunk', id: randomBytes(16), index: 3, sealed: randomBytes(2000) }),
  ];
  return { name: 'delivery-unit', input: bytesInput(units, 4096), run: (body) => decodeUnit(body) };
}

function manifestSeeds(): Buffer[] {
  const base: Manifest = {
    v: 1,
    id: randomBytes(16).toString('hex') as Manifest['id'],
    from: randomBytes(20).toString('hex').toUpperCase() as Fingerprint,
    to: randomBytes(20).toString('hex').toUpperCase() as Fingerprint,
    size: 5,
    chunkSize: 0,
    chunks: 0,
    contentKey: randomBytes(32).toString('base64url'),
    sha256: createHash('sha256').update('hello').digest('hex'),
  };
  return [
    encodeManifest(base, Buffer.from('hello')),
    encodeManifest({ ...base, size: 1_000_000, chunkSize: 262_080, chunks: 4 }),
  ];
}

function manifestTarget(): Target<Buffer> {
  return { name: 'manifest', input: bytesInput(manifestSeeds(), 1024), run: (buf) => decodeManifest(buf) };
}

function chunkTarget(): Target<{ sealed: Buffer; index: number; chunks: number }> {
  const key = randomBytes(32);
  const id = randomBytes(16);
  const plain = [randomBytes(100), randomBytes(3000)];
  const sealed = plain.map((p, i) => sealChunk(key, id, i, 2, p));
  return {
    name: 'chunk',
    input: fc.record({
      sealed: bytesInput(sealed, 4096),
      index: fc.oneof(fc.constantFrom(0, 1), fc.nat()),
      chunks: fc.oneof(fc.constant(2), fc.nat()),
    }),
    run: ({ sealed: s, index, chunks }) => ({ index, chunks, data: openChunk(key, id, index, chunks, s) }),
    forged(_input, decoded) {
      const d = decoded as { index: number; chunks: number; data: Buffer };
      return d.chunks === 2 && d.index < 2 && same(plain[d.index], d.data)
        ? undefined
        : 'an altered or misplaced chunk opened';
    },
  };
}

export function coreTargets(): Target<never>[] {
  return [
    onionTarget(),
    onionLayerTarget(),
    reportTarget(),
    complaintTarget(),
    pathTarget(),
    discoveryAnswerTarget(),
    discoveryHandlerTarget(),
    unitTarget(),
    manifestTarget(),
    chunkTarget(),
  ] as Target<never>[];
}

// A relay's CPU per forwarded packet, against the crypto it cannot avoid, in the same run (issue 14:
// "a relay forwards >= 5,000 small messages/s per core, node:crypto only on the hop path").
//
// Kith: relay b of a line m → b → c → d in one process over the in-memory transport, in-memory
// store (no commit: relay-store.ts measures what durability adds). After route discovery c stops
// handling frames (it takes them and does nothing), and m sends one packet at a time, waiting for
// the network to be idle in between, so that b's timing holds no one else's work and no queue:
// each onion frame is timed from its arrival at b until b's handler returned (verify m's hop
// signature, peel the layer, sign for c, remember the hop, hand on, seal and send the
// "forwarded" report). Not included: relaying the reports of later hops back (a SHA-256, a
// lookup and a send per report).
// Baseline: node:crypto alone doing what every forwarded packet needs, on the same sizes: one
// Ed25519 verify (key parsed once, as the relay caches it), one X25519 with the packet's fresh
// ephemeral key, HKDF, the slot's ChaCha20-Poly1305, the header and body keystreams, two SHA-256
// hop digests and two Ed25519 signatures (hop signature and report).
// Run: node --import tsx bench/delivery/relay-cpu.ts [--packets 2000]
import {
  createCipheriv,
  createHash,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { HEADER_BYTES } from '../../agent/onion/layers.ts';
import { FrameType } from '../../agent/onion/wire.ts';
import { Simulation } from '../../agent/sim/sim.ts';
import type { AgentId } from '../../common/ids.ts';
import { manifestPacket } from '../lib/packets.ts';
import { header, row } from '../lib/stats.ts';

const i = process.argv.indexOf('--packets');
const PACKETS = i >= 0 ? Number(process.argv[i + 1]) : 2000;
/** Milliseconds of b's own handling per forwarded packet. */
async function relay(): Promise<{ msPerPacket: number; bodyBytes: number }> {
  const sim = new Simulation({ delivery: { stallTimeoutMs: 600_000 } });
  try {
    const [b, c, d, m] = sim.addAgents(4);
    sim.connect(b!, c!);
    sim.connect(c!, d!);
    sim.connect(m!, b!);
    await sim.start();
    const toD = (await m!.engine.discovery.find(d!.entity))[0]!.entries;
    const packets = Array.from({ length: PACKETS }, () => manifestPacket(m!.keys, toD));
    c!.transport.deliver = async () => undefined;
    const spent = { onion: 0 };
    const deliver = b!.transport.deliver.bind(b!.transport);
    b!.transport.deliver = async (from: AgentId, frame: Uint8Array) => {
      const t0 = performance.now();
      await deliver(from, frame);
      const ms = performance.now() - t0;
      if (frame[1] === FrameType.onion) spent.onion += ms;
    };
    const before = b!.engine.metrics.get('forwarded');
    for (const p of packets) {
      await m!.transport.send(b!.keys.id, p);
      await sim.network.idle();
    }
    const forwarded = b!.engine.metrics.get('forwarded') - before;
    if (forwarded !== PACKETS) throw new Error(`relay forwarded ${forwarded} of ${PACKETS}`);
    return {
      msPerPacket: spent.onion / PACKETS,
      bodyBytes: packets[0]!.length - HEADER_BYTES,
    };
  } finally {
    await sim.stop();
  }
}

/**
 * node:crypto alone, what one forwarded packet needs (see the file's head), the ephemeral key
 * imported from JWK (what agent/onion/keys.ts does) or from SPKI DER (what it did before).
 */
function cryptoFloor(bodyBytes: number, format: 'jwk' | 'der'): number {
  const ed = generateKeyPairSync('ed25519');
  const onion = generateKeyPairSync('x25519');
  const spki = Buffer.from('302a300506032b656e032100', 'hex');
  const headerBuf = randomBytes(HEADER_BYTES);
  const body = randomBytes(bodyBytes);
  const data = randomBytes(32);
  const signature = sign(null, data, ed.privateKey);
  const ephemerals = Array.from({ length: PACKETS }, () =>
    generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(12),
  );
  const t0 = performance.now();
  for (let k = 0; k < PACKETS; k++) {
    if (!verify(null, data, ed.publicKey, signature)) throw new Error('verify failed');
    const eph =
      format === 'der'
        ? createPublicKey({ key: Buffer.concat([spki, ephemerals[k]!]), format: 'der', type: 'spki' })
        : createPublicKey({
            key: { kty: 'OKP', crv: 'X25519', x: ephemerals[k]!.toString('base64url') },
            format: 'jwk',
          });
    const shared = diffieHellman({ privateKey: onion.privateKey, publicKey: eph });
    const okm = Buffer.from(hkdfSync('sha256', shared, ephemerals[k]!, 'kith-onion-v1', 128));
    const slot = createCipheriv('chacha20-poly1305', okm.subarray(0, 32), Buffer.alloc(12), {
      authTagLength: 16,
    });
    slot.update(headerBuf.subarray(32, 80));
    slot.final();
    const iv = Buffer.alloc(16);
    createCipheriv('chacha20', okm.subarray(32, 64), iv).update(headerBuf);
    createCipheriv('chacha20', okm.subarray(32, 64), iv).update(body);
    createHash('sha256').update(headerBuf).update(body).digest();
    createHash('sha256').update(headerBuf).update(body).digest();
    sign(null, data, ed.privateKey);
    sign(null, data, ed.privateKey);
  }
  return (performance.now() - t0) / PACKETS;
}

const r = await relay();
const floor = cryptoFloor(r.bodyBytes, 'jwk');
const floorDer = cryptoFloor(r.bodyBytes, 'der');
console.log(
  header(
    `A relay's own CPU per forwarded packet (${PACKETS} packets, ${r.bodyBytes}-byte body, in-memory store) vs node:crypto's share`,
  ),
);
console.log(row('ms per packet (relay b) vs crypto alone', r.msPerPacket, floor, 'ms', 3));
console.log(row('ms per packet vs crypto alone, keys from DER', r.msPerPacket, floorDer, 'ms', 3));
console.log(row('packets/s per core (1000 / ms)', 1000 / r.msPerPacket, 1000 / floor, '/s', 0));
console.log(row("packets/s per core vs the issue's 5,000/s", 1000 / r.msPerPacket, 5000, '/s', 0));

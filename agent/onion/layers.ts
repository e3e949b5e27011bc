import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { KithError } from '../../common/errors.ts';
import { newEphemeral, x25519 } from './keys.ts';

/**
 * Onion layers (docs/protocol.md, "Onion packet"). The header is always MAX_HOPS slots, whatever
 * the path length: each hop opens the first slot, shifts the rest left and appends random bytes,
 * so every hop sees a header of the same size and cannot tell its position nor whether the next
 * hop is the last. The body keeps its size at every hop (one ChaCha20 keystream per hop); its
 * integrity is end to end (manifest and chunks are authenticated inside) and each hop signs what it
 * hands on, so tampering is attributable to a neighbour.
 */

export const MAX_HOPS = 8;
export const INFO_BYTES = 48;
export const SLOT_BYTES = 32 + INFO_BYTES + 16;
export const HEADER_BYTES = MAX_HOPS * SLOT_BYTES;

/** What one hop learns when it opens its slot. */
export type HopInstruction =
  | {
      kind: 'forward';
      /** Raw Ed25519 key (= agent id) of the neighbour to hand the packet to. */
      next: Buffer;
      /** Send a "forwarded" progress report back to the sender. */
      report: boolean;
      /** Unix ms after which hops drop the packet (bounds replay caches). */
      expiresAt: number;
      /** A first contact (docs/protocol.md 15.7): hops hold it to their neighbour's credit. */
      firstContact?: boolean;
    }
  | { kind: 'deliver'; report: boolean; expiresAt: number; firstContact?: boolean };

/** Per-hop secrets the sender keeps to read that hop's reports. */
export interface HopSecret {
  /** Key of the hop's sealed progress reports. */
  reportKey: Buffer;
  /** What the hop signs its reports over (binds a report to this packet without revealing the key). */
  reportTag: Buffer;
}

interface LayerKeys {
  slotKey: Buffer;
  streamKey: Buffer;
  reportKey: Buffer;
  reportTag: Buffer;
}

function deriveKeys(shared: Buffer, ephemeral: Buffer, onionPublic: Buffer): LayerKeys {
  const okm = Buffer.from(
    hkdfSync('sha256', shared, Buffer.concat([ephemeral, onionPublic]), 'kith-onion-v1', 128),
  );
  return {
    slotKey: okm.subarray(0, 32),
    streamKey: okm.subarray(32, 64),
    reportKey: okm.subarray(64, 96),
    reportTag: okm.subarray(96, 128),
  };
}

const ZERO_NONCE = Buffer.alloc(12);
const HEADER_IV = Buffer.alloc(16);
const BODY_IV = Buffer.concat([Buffer.alloc(4), Buffer.from('kith-body-v1')]);

function keystreamXor(key: Buffer, iv: Buffer, data: Uint8Array): Buffer {
  const cipher = createCipheriv('chacha20', key, iv);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/** The 48-byte instruction block of a slot (one size for every kind). */
export function encodeInstruction(ins: HopInstruction): Buffer {
  const out = Buffer.alloc(INFO_BYTES);
  out[0] = ins.kind === 'forward' ? 1 : 2;
  // Flags: bit 0 report, bit 1 first contact (15.7; agents before r27 read bit 0 only).
  out[1] = (ins.report ? 1 : 0) | (ins.firstContact ? 2 : 0);
  if (ins.kind === 'forward') ins.next.copy(out, 2);
  out.writeBigUInt64BE(BigInt(ins.expiresAt), 34);
  return out;
}

function decodeInstruction(info: Buffer): HopInstruction {
  const report = (info[1] & 1) === 1;
  const first = (info[1] & 2) === 2 ? { firstContact: true } : {};
  const expiresAt = Number(info.readBigUInt64BE(34));
  if (info[0] === 1)
    return { kind: 'forward', next: Buffer.from(info.subarray(2, 34)), report, expiresAt, ...first };
  if (info[0] === 2) return { kind: 'deliver', report, expiresAt, ...first };
  throw new KithError('ERR_ONION_UNDECRYPTABLE', 'unknown hop instruction');
}

/**
 * Wraps a body for a path. `hops[i].onionPublic` is hop i's X25519 key; the last hop must have a
 * 'deliver' instruction. Returns the header and body to hand to hops[0] and the secrets per hop.
 */
export function buildOnion(
  hops: { onionPublic: Buffer; instruction: HopInstruction }[],
  body: Buffer,
): { header: Buffer; body: Buffer; secrets: HopSecret[] } {
  if (hops.length === 0 || hops.length > MAX_HOPS) {
    throw new KithError('ERR_PATH_TOO_LONG', `a path has 1 to ${MAX_HOPS} hops, not ${hops.length}`);
  }
  const layers = hops.map((hop) => {
    const eph = newEphemeral();
    const keys = deriveKeys(x25519(eph.privateKey, hop.onionPublic), eph.publicRaw, hop.onionPublic);
    return { eph: eph.publicRaw, keys };
  });
  let header = randomBytes(HEADER_BYTES);
  let sealedBody = body;
  for (let i = hops.length - 1; i >= 0; i--) {
    const { eph, keys } = layers[i];
    const cipher = createCipheriv('chacha20-poly1305', keys.slotKey, ZERO_NONCE, { authTagLength: 16 });
    cipher.setAAD(eph, { plaintextLength: INFO_BYTES });
    const info = Buffer.concat([cipher.update(encodeInstruction(hops[i].instruction)), cipher.final()]);
    const rest = keystreamXor(keys.streamKey, HEADER_IV, header.subarray(0, HEADER_BYTES - SLOT_BYTES));
    header = Buffer.concat([eph, info, cipher.getAuthTag(), rest]);
    sealedBody = keystreamXor(keys.streamKey, BODY_IV, sealedBody);
  }
  return {
    header,
    body: sealedBody,
    secrets: layers.map(({ keys }) => ({ reportKey: keys.reportKey, reportTag: keys.reportTag })),
  };
}

/** What a hop gets from peeling its layer. */
export interface Peeled {
  instruction: HopInstruction;
  /** Header to hand on (same size). */
  header: Buffer;
  /** Body with this hop's layer removed (same size). */
  body: Buffer;
  /** This hop's report key and tag. */
  secret: HopSecret;
}

/** Opens this agent's layer. Throws ERR_ONION_UNDECRYPTABLE if the slot is not for us or was altered. */
export function peelOnion(
  onionPrivate: KeyObject,
  onionPublic: Buffer,
  header: Uint8Array,
  body: Uint8Array,
): Peeled {
  if (header.length !== HEADER_BYTES) {
    throw new KithError(
      'ERR_ONION_MALFORMED',
      `an onion header is ${HEADER_BYTES} bytes, not ${header.length}`,
    );
  }
  const h = Buffer.from(header.buffer, header.byteOffset, header.length);
  const eph = h.subarray(0, 32);
  let keys: LayerKeys;
  try {
    keys = deriveKeys(x25519(onionPrivate, eph), Buffer.from(eph), onionPublic);
  } catch {
    throw new KithError('ERR_ONION_UNDECRYPTABLE', 'the onion layer does not decrypt');
  }
  let info: Buffer;
  try {
    const decipher = createDecipheriv('chacha20-poly1305', keys.slotKey, ZERO_NONCE, { authTagLength: 16 });
    decipher.setAAD(eph, { plaintextLength: INFO_BYTES });
    decipher.setAuthTag(h.subarray(32 + INFO_BYTES, SLOT_BYTES));
    info = Buffer.concat([decipher.update(h.subarray(32, 32 + INFO_BYTES)), decipher.final()]);
  } catch {
    throw new KithError('ERR_ONION_UNDECRYPTABLE', 'the onion layer does not decrypt');
  }
  const instruction = decodeInstruction(info);
  const rest = keystreamXor(keys.streamKey, HEADER_IV, h.subarray(SLOT_BYTES));
  return {
    instruction,
    header: Buffer.concat([rest, randomBytes(SLOT_BYTES)]),
    body: keystreamXor(keys.streamKey, BODY_IV, body),
    secret: { reportKey: keys.reportKey, reportTag: keys.reportTag },
  };
}

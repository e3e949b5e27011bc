import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { KithError } from '../../common/errors.ts';
import type { AgentId } from '../../common/ids.ts';

/**
 * The plain key material the protocol core works with: an Ed25519 agent key (its public half
 * is the agent id) and an X25519 onion key. No OpenPGP here, so the simulator can make
 * thousands of agents cheaply; agentKeysFromIdentity() adapts a real node's Identity.
 */
export interface AgentKeys {
  /** The agent id (libp2p peer id) derived from signPublic. */
  id: AgentId;
  /** Raw 32-byte Ed25519 public key. */
  signPublic: Buffer;
  /** Ed25519 private key for per-hop, path-entry and report signatures. */
  signPrivate: KeyObject;
  /** Raw 32-byte X25519 public key that senders wrap onion layers to. */
  onionPublic: Buffer;
  /** X25519 private key that peels onion layers addressed to this agent. */
  onionPrivate: KeyObject;
}

const ED_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
// libp2p peer id of an Ed25519 key: identity multihash (0x00, len 36) of the protobuf PublicKey {Type=1, Data=32 bytes}.
const PEER_ID_PREFIX = Buffer.from('002408011220', 'hex');

const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

export function base58Encode(bytes: Uint8Array): string {
  const digits: number[] = [0];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) {
      carry += digits[i] << 8;
      digits[i] = carry % 58;
      carry = Math.floor(carry / 58);
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = Math.floor(carry / 58);
    }
  }
  let out = '';
  for (const byte of bytes) {
    if (byte !== 0) break;
    out += '1';
  }
  for (let i = digits.length - 1; i >= 0; i--) {
    if (i === digits.length - 1 && digits[i] === 0 && digits.length > 1) continue;
    out += ALPHABET[digits[i]];
  }
  return out;
}

export function base58Decode(text: string): Buffer {
  const bytes: number[] = [0];
  for (const char of text) {
    let carry = ALPHABET.indexOf(char);
    if (carry < 0) throw new KithError('ERR_BAD_AGENT_ID', 'not base58');
    for (let i = 0; i < bytes.length; i++) {
      carry += bytes[i] * 58;
      bytes[i] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) {
      bytes.push(carry & 0xff);
      carry >>= 8;
    }
  }
  let zeros = 0;
  for (const char of text) {
    if (char !== '1') break;
    zeros++;
  }
  const body = bytes.reverse();
  while (body.length > 0 && body[0] === 0) body.shift();
  return Buffer.concat([Buffer.alloc(zeros), Buffer.from(body)]);
}

/** The libp2p peer id of a raw Ed25519 public key (what @libp2p/peer-id prints, "12D3KooW..."). */
export function agentIdFromPublic(signPublic: Uint8Array): AgentId {
  return base58Encode(Buffer.concat([PEER_ID_PREFIX, signPublic])) as AgentId;
}

/** The raw Ed25519 key inside an Ed25519 peer id; an agent id is its own public key. */
export function publicFromAgentId(id: AgentId): Buffer {
  const bytes = base58Decode(id);
  if (bytes.length !== 38 || !bytes.subarray(0, 6).equals(PEER_ID_PREFIX)) {
    throw new KithError('ERR_BAD_AGENT_ID', `not an Ed25519 agent id: ${id}`);
  }
  return bytes.subarray(6);
}

export function ed25519PrivateFromSeed(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([ED_PKCS8, seed]), format: 'der', type: 'pkcs8' });
}

/*
 * Raw keys in and out through JWK, not DER: with Node 20's OpenSSL 3, importing a 32-byte X25519
 * or Ed25519 public key from SPKI DER cost 7-18x an import from JWK on this machine (~800 against
 * ~45-120 us at load ~25; exporting likewise), and a relay imports one fresh ephemeral key per
 * packet: the DER import was 26% of a relay's packet handling (bench/RESULTS.md 10.4). Same keys,
 * same errors for bad ones (a wrong length throws at import, a low-order key at derivation).
 */
function rawPublic(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');
}

function okpPublic(crv: 'X25519' | 'Ed25519', raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv, x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });
}

/** Fresh keys for a simulated agent (or a test). */
export function generateAgentKeys(): AgentKeys {
  const ed = generateKeyPairSync('ed25519');
  const x = generateKeyPairSync('x25519');
  const signPublic = rawPublic(ed.publicKey);
  return {
    id: agentIdFromPublic(signPublic),
    signPublic,
    signPrivate: ed.privateKey,
    onionPublic: rawPublic(x.publicKey),
    onionPrivate: x.privateKey,
  };
}

/**
 * Adapts a node's Identity (agent/identity): the libp2p Ed25519 key's raw form is seed(32) | public(32).
 * Structural types so this module does not import libp2p.
 */
export function agentKeysFromIdentity(identity: {
  agentId: AgentId;
  agentKey: { raw: Uint8Array };
  onion: { publicKey: Buffer; privateKey: KeyObject };
}): AgentKeys {
  const raw = identity.agentKey.raw;
  if (raw.length !== 64) throw new KithError('ERR_BAD_AGENT_KEY', 'the agent key is not an Ed25519 key');
  const signPublic = Buffer.from(raw.subarray(32));
  if (agentIdFromPublic(signPublic) !== identity.agentId) {
    throw new KithError('ERR_BAD_AGENT_KEY', 'the agent key does not match the agent id');
  }
  return {
    id: identity.agentId,
    signPublic,
    signPrivate: ed25519PrivateFromSeed(raw.subarray(0, 32)),
    onionPublic: identity.onion.publicKey,
    onionPrivate: identity.onion.privateKey,
  };
}

// Public KeyObjects are cached: parsing one costs about as much as a verify.
const VERIFY_CACHE_LIMIT = 4096;

/** Verifies Ed25519 signatures by raw public key, caching parsed keys (bounded). */
export class SignatureVerifier {
  private readonly cache = new Map<string, KeyObject>();

  verify(signPublic: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
    if (signature.length !== 64 || signPublic.length !== 32) return false;
    const hex = Buffer.from(signPublic).toString('hex');
    let key = this.cache.get(hex);
    if (!key) {
      try {
        key = okpPublic('Ed25519', signPublic);
      } catch {
        return false;
      }
      if (this.cache.size >= VERIFY_CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(hex, key);
    }
    try {
      return verify(null, data, key, signature);
    } catch {
      return false;
    }
  }

  /** Verifies a signature by the agent whose id is given. */
  verifyByAgent(agent: AgentId, data: Uint8Array, signature: Uint8Array): boolean {
    let pub: Buffer;
    try {
      pub = publicFromAgentId(agent);
    } catch {
      return false;
    }
    return this.verify(pub, data, signature);
  }
}

export function signWith(keys: AgentKeys, data: Uint8Array): Buffer {
  return sign(null, data, keys.signPrivate);
}

export function x25519Public(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new KithError('ERR_ONION_KEY', `an onion key is 32 bytes, not ${raw.length}`);
  return okpPublic('X25519', raw);
}

/** X25519 shared secret; throws ERR_ONION_KEY on a malformed or low-order public key. */
export function x25519(privateKey: KeyObject, publicRaw: Uint8Array): Buffer {
  try {
    return diffieHellman({ privateKey, publicKey: x25519Public(publicRaw) });
  } catch (err) {
    throw new KithError('ERR_ONION_KEY', 'bad onion public key', undefined, { cause: err });
  }
}

export function newEphemeral(): { privateKey: KeyObject; publicRaw: Buffer } {
  const pair = generateKeyPairSync('x25519');
  return { privateKey: pair.privateKey, publicRaw: rawPublic(pair.publicKey) };
}

import * as openpgp from 'openpgp';

/**
 * A bare OpenPGP v4 key packet around an agent's raw 32-byte key (docs/protocol.md 7.8): its
 * Ed25519 signing key (agent-signature.ts, a primary key packet) or its X25519 wrap key (wrap.ts,
 * a subkey packet, as openpgp.js wraps session keys to subkeys). Created at the epoch so that
 * every side computes the same key id from the public bytes alone, with no self-signature: the
 * entity's agent certificate is what vouches for the key.
 */

// openpgp.js exports the packet classes, but not all of their members are typed.
export interface RawKeyPacket {
  version: number;
  algorithm: number;
  publicParams: { A: Uint8Array };
  privateParams?: { seed: Uint8Array } | { k: Uint8Array };
  isEncrypted?: boolean;
  computeFingerprintAndKeyID(): Promise<void>;
  getKeyID(): { equals(other: unknown): boolean; toHex(): string };
}
const pgp = openpgp as unknown as Record<
  'PublicKeyPacket' | 'SecretKeyPacket' | 'PublicSubkeyPacket' | 'SecretSubkeyPacket',
  new (date: Date) => RawKeyPacket
>;
const EPOCH = new Date(0);

/** Ed25519 (algorithm 27) signs; X25519 (algorithm 25) receives wrapped session keys. */
export type RawKeyUse = 'sign' | 'wrap';

/** The key packet for `publicKey`, a secret one when `privateKey` (seed or scalar) is given. */
export async function rawKeyPacket(
  use: RawKeyUse,
  publicKey: Uint8Array,
  privateKey?: Uint8Array,
): Promise<RawKeyPacket> {
  const sign = use === 'sign';
  const Packet = sign
    ? privateKey
      ? pgp.SecretKeyPacket
      : pgp.PublicKeyPacket
    : privateKey
      ? pgp.SecretSubkeyPacket
      : pgp.PublicSubkeyPacket;
  const packet = new Packet(EPOCH);
  packet.version = 4;
  packet.algorithm = sign ? openpgp.enums.publicKey.ed25519 : openpgp.enums.publicKey.x25519;
  packet.publicParams = { A: new Uint8Array(publicKey) };
  if (privateKey) {
    const secret = new Uint8Array(privateKey);
    packet.privateParams = sign ? { seed: secret } : { k: secret };
    packet.isEncrypted = false;
  }
  await packet.computeFingerprintAndKeyID();
  return packet;
}

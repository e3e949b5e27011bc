import * as openpgp from 'openpgp';
import { peerIdFromString } from '@libp2p/peer-id';
import type { AgentId } from '../../common/ids.ts';
import { verifyAgentCertificate, type AgentCertificate } from '../identity/certificate.ts';
import { rawKeyPacket, type RawKeyPacket } from './raw-key-packet.ts';

/**
 * Messages signed by the sending agent, not by the entity (docs/protocol.md 7.8, "No shared
 * private key", since r37). The signature is an ordinary OpenPGP binary-document signature
 * (RFC 9580 algorithm 27, Ed25519, SHA-512) made with the agent's own libp2p Ed25519 key, as a
 * bare v4 key packet created at the epoch (so both sides compute the same key id from the 32
 * public bytes, as wrap.ts does for X25519). Its hashed area carries the agent's certificate in the
 * notation `agent-cert@kith` (`{canonical, signature}` JSON): the recipient checks that the
 * sender entity's key signed that certificate, that the agent is not revoked, and that the
 * signature verifies with the agent key the certificate names. A device needs only its own keys to
 * send; a stolen device is cut off by revoking its certificate.
 */

/** The notation that carries the signing agent's certificate. */
export const AGENT_CERT_NOTATION = 'agent-cert@kith';

/** What signs on this device: its agent key and a getter of its current certificate (it renews). */
export interface AgentSigner {
  /** The 32-byte Ed25519 seed of the agent key. */
  seed: Uint8Array;
  /** The 32-byte Ed25519 public key (the agent's peer id holds it). */
  publicKey: Uint8Array;
  certificate: () => { canonical: string; signature: string };
}

// The packet classes are exported by openpgp.js, not all of their members typed.
interface SignaturePacketLike {
  signatureType: number;
  publicKeyAlgorithm: number;
  hashAlgorithm: number;
  created: Date | null;
  issuerKeyID: { equals(other: unknown): boolean };
  rawNotations: Array<{ name: string; value: Uint8Array; humanReadable: boolean; critical: boolean }>;
  sign(key: RawKeyPacket, data: unknown, date: Date, detached: boolean, config: unknown): Promise<void>;
  verify(
    key: RawKeyPacket,
    type: number,
    data: unknown,
    date: Date,
    detached: boolean,
    config: unknown,
  ): Promise<void>;
}
interface LiteralLike {
  setBytes(bytes: Uint8Array, format: number): void;
}
const pgp = openpgp as unknown as {
  SignaturePacket: new () => SignaturePacketLike;
  LiteralDataPacket: new () => LiteralLike;
  PacketList: new () => Array<unknown>;
  Message: new (packets: unknown) => openpgp.Message<Uint8Array>;
};
const ED25519 = openpgp.enums.publicKey.ed25519;

function literal(plaintext: Uint8Array): LiteralLike {
  const packet = new pgp.LiteralDataPacket();
  packet.setBytes(new Uint8Array(plaintext), openpgp.enums.literal.binary);
  return packet;
}

/** A signer from a libp2p Ed25519 private key (its `raw` is seed ‖ public key). */
export function agentSignerOf(
  key: { raw: Uint8Array; publicKey: { raw: Uint8Array } },
  certificate: AgentSigner['certificate'],
): AgentSigner {
  return { seed: key.raw.subarray(0, 32), publicKey: key.publicKey.raw, certificate };
}

/** The plaintext as an OpenPGP message signed by this agent (signature ‖ literal data), to encrypt. */
export async function agentSignedMessage(
  plaintext: Uint8Array,
  signer: AgentSigner,
): Promise<openpgp.Message<Uint8Array>> {
  const data = literal(plaintext);
  const signature = new pgp.SignaturePacket();
  signature.signatureType = openpgp.enums.signature.binary;
  signature.publicKeyAlgorithm = ED25519;
  signature.hashAlgorithm = openpgp.enums.hash.sha512;
  const cert = signer.certificate();
  signature.rawNotations = [
    {
      name: AGENT_CERT_NOTATION,
      value: new TextEncoder().encode(
        JSON.stringify({ canonical: cert.canonical, signature: cert.signature }),
      ),
      humanReadable: false,
      critical: false,
    },
  ];
  await signature.sign(
    await rawKeyPacket('sign', signer.publicKey, signer.seed),
    data,
    new Date(),
    false,
    openpgp.config,
  );
  const list = new pgp.PacketList();
  list.push(signature, data);
  return new pgp.Message(list);
}

/**
 * Checks an agent signature over `plaintext` (the signature packet from openpgp.decrypt's result):
 * the certificate it carries must be signed by `entityKey` and valid when the signature was made,
 * the agent not revoked, the signature good under the agent's key. Returns the certificate, or
 * undefined when any of it fails (the message is then delivered unverified, section 10).
 */
export async function verifyAgentSignature(
  packet: unknown,
  plaintext: Uint8Array,
  entityKey: openpgp.PublicKey,
  isRevoked: (agent: AgentId) => boolean,
): Promise<AgentCertificate | undefined> {
  const signature = packet as SignaturePacketLike;
  const note = signature.rawNotations?.find((n) => n.name === AGENT_CERT_NOTATION);
  if (note === undefined || signature.publicKeyAlgorithm !== ED25519 || signature.created === null)
    return undefined;
  try {
    const { canonical, signature: certSignature } = JSON.parse(new TextDecoder().decode(note.value)) as {
      canonical: string;
      signature: string;
    };
    const cert = await verifyAgentCertificate(entityKey, canonical, certSignature, signature.created);
    if (isRevoked(cert.body.agent)) return undefined;
    const publicKey = peerIdFromString(cert.body.agent).publicKey?.raw;
    if (publicKey === undefined || publicKey.length !== 32) return undefined;
    const key = await rawKeyPacket('sign', publicKey);
    if (!signature.issuerKeyID.equals(key.getKeyID())) return undefined;
    // Throws when the digest does not match or the signature is dated in the future.
    await signature.verify(
      key,
      openpgp.enums.signature.binary,
      literal(plaintext),
      new Date(),
      false,
      openpgp.config,
    );
    return cert;
  } catch {
    return undefined;
  }
}

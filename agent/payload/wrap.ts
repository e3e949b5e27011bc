import { randomBytes, type KeyObject } from 'node:crypto';
import * as openpgp from 'openpgp';
import { certificateValidAt } from '../trust/decisions.ts';
import { agentSignedMessage, type AgentSigner } from './agent-signature.ts';
import { rawKeyPacket, type RawKeyPacket } from './raw-key-packet.ts';

/**
 * Who signs a message: this agent with its own key (agent-signature.ts, since r37), or an
 * OpenPGP private key (the entity key, as before r37: tests and the simulator's fixtures).
 */
export type MessageSigner = AgentSigner | openpgp.PrivateKey;

/**
 * Encrypt once, readable by every agent of the recipient entity (docs/protocol.md 7.8): one
 * signed SEIPD packet under a fresh session key, and before it one PKESK packet per certified
 * agent of the recipient, each wrapping that session key to the agent's X25519 key (RFC 9580
 * algorithm 25, the key the agent certificate names as `onionKey`). No agent needs another's
 * private key, and a sibling handed the same bytes opens them with its own.
 *
 * openpgp.js only wraps session keys to whole OpenPGP keys with self-signatures; an agent's
 * X25519 key is certified by the entity's agent certificate instead, so the packets are built from
 * openpgp.js's own packet classes around a bare key packet (v4, created at the epoch so that
 * every side computes the same key id from the 32 public bytes).
 */

/** A recipient agent's wrap key: the 32 raw bytes of its X25519 public key. */
export type AgentWrapKey = Uint8Array;

// The packet classes are exported by openpgp.js but not all of their members are typed.
interface PkeskLike {
  publicKeyID: { equals(other: unknown): boolean };
  publicKeyAlgorithm: number;
  sessionKey?: Uint8Array;
  sessionKeyAlgorithm: number;
  encrypt(key: RawKeyPacket): Promise<void>;
  decrypt(key: RawKeyPacket): Promise<void>;
}
const pgp = openpgp as unknown as {
  PublicKeyEncryptedSessionKeyPacket: {
    fromObject(o: {
      version: 3;
      encryptionKeyPacket: RawKeyPacket;
      anonymousRecipient: boolean;
      sessionKey: Uint8Array;
      sessionKeyAlgorithm: number;
    }): PkeskLike;
  };
  PacketList: new () => Array<unknown> & { write(): Uint8Array };
};
const X25519 = openpgp.enums.publicKey.x25519;

/** At most this many agents of one entity get a wrapped session key (~60 bytes each). */
export const MAX_WRAPPED_AGENTS = 32;

/**
 * Whom a message to an entity is wrapped for: its agents whose certificates are valid now and not
 * revoked. A revoked agent must not read mail sent after its revocation is known; an agent whose
 * certificate is not known here gets the mail from a sibling (docs/protocol.md 16.3).
 */
export function wrapKeysOf(
  agents: ReadonlyArray<{ onionKey: Buffer; revoked: boolean; notBefore: number; notAfter: number }>,
  now: number,
): AgentWrapKey[] {
  return agents
    .filter((a) => !a.revoked && certificateValidAt(a.notBefore, a.notAfter, now))
    .slice(0, MAX_WRAPPED_AGENTS)
    .map((a) => new Uint8Array(a.onionKey));
}

/** The raw 32 bytes of an X25519 key object (public, or the private scalar). */
export function rawX25519(key: KeyObject, part: 'public' | 'private'): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.from((part === 'public' ? jwk.x : jwk.d) as string, 'base64url');
}

/** The OpenPGP key id (hex) a PKESK to this wrap key carries. */
export async function wrapKeyId(publicKey: AgentWrapKey): Promise<string> {
  return (await rawKeyPacket('wrap', publicKey)).getKeyID().toHex();
}

/**
 * Signs `plaintext` with `signingKey` and encrypts it once, the session key wrapped for each
 * recipient key, and for `entityKey` too when given. Binary OpenPGP message: PKESK… ‖ SEIPD (v1,
 * AES-256, which GnuPG also reads).
 *
 * Why the entity key as well: the sender wraps for the agents whose certificates it holds, but
 * the path may end at one it does not know yet (a device added since, learned only from a path
 * record). The device that holds the entity key (docs/protocol.md 7.8, since r37 only one does)
 * reads it then, and its siblings get it from there re-wrapped for their own keys (16.3); an
 * agent opens with its own key whenever a packet is wrapped for it.
 */
export async function sealToAgents(
  plaintext: Uint8Array,
  recipients: readonly AgentWrapKey[],
  signingKey: MessageSigner,
  entityKey?: openpgp.PublicKey,
): Promise<Uint8Array> {
  if (recipients.length === 0) throw new RangeError('no recipient keys');
  const { sessionKey, body } = await sealOnce(plaintext, signingKey);
  const head = await wrapSessionKey(sessionKey, recipients, entityKey);
  return Buffer.concat([head, body]);
}

/** A session key as openpgp.js takes it (always AES-256 here). */
export interface SessionKey {
  data: Uint8Array;
  algorithm: 'aes256';
}

/**
 * The signed SEIPD packet alone, under a fresh session key: the part of a message that does not
 * depend on its recipient. A list signs and encrypts a post with it once and wraps the session key
 * per subscriber (wrapSessionKey; docs/protocol.md 7.8, manifest version 2).
 */
export async function sealOnce(
  plaintext: Uint8Array,
  signingKey: MessageSigner,
): Promise<{ sessionKey: SessionKey; body: Uint8Array }> {
  const sessionKey: SessionKey = { data: new Uint8Array(randomBytes(32)), algorithm: 'aes256' };
  const message = (await openpgp.encrypt(
    'seed' in signingKey
      ? { message: await agentSignedMessage(plaintext, signingKey), sessionKey, format: 'object' }
      : {
          message: await openpgp.createMessage({ binary: plaintext }),
          sessionKey,
          signingKeys: signingKey,
          format: 'object',
        },
  )) as unknown as { packets: unknown[] };
  const list = new pgp.PacketList();
  list.push(...message.packets);
  return { sessionKey, body: list.write() };
}

/**
 * The PKESK packets of one recipient: the session key wrapped to each of its agents' keys, then
 * to its entity key when given (sealToAgents says why). Names nobody else. At least one key.
 */
export async function wrapSessionKey(
  sessionKey: SessionKey,
  recipients: readonly AgentWrapKey[],
  entityKey?: openpgp.PublicKey,
): Promise<Uint8Array> {
  if (recipients.length === 0 && entityKey === undefined) throw new RangeError('no recipient keys');
  const list = new pgp.PacketList();
  for (const recipient of recipients) {
    const packet = await rawKeyPacket('wrap', recipient);
    const pkesk = pgp.PublicKeyEncryptedSessionKeyPacket.fromObject({
      version: 3,
      encryptionKeyPacket: packet,
      anonymousRecipient: false,
      sessionKey: sessionKey.data,
      sessionKeyAlgorithm: openpgp.enums.symmetric.aes256,
    });
    await pkesk.encrypt(packet);
    delete pkesk.sessionKey;
    list.push(pkesk);
  }
  if (entityKey !== undefined) {
    const toEntity = (await openpgp.encryptSessionKey({
      ...sessionKey,
      encryptionKeys: entityKey,
      format: 'object',
    })) as unknown as { packets: unknown[] };
    list.push(...toEntity.packets);
  }
  return list.write();
}

/**
 * The session key of a message if one of its PKESK packets is wrapped to our agent key, else
 * undefined (a message for another agent, or sealed to the entity key only). Throws when the
 * packet for our key does not unwrap (damaged or forged).
 */
export async function unwrapForAgent(
  message: openpgp.Message<Uint8Array>,
  own: { publicKey: Uint8Array; privateKey: Uint8Array },
): Promise<openpgp.SessionKey | undefined> {
  const packet = await rawKeyPacket('wrap', own.publicKey, own.privateKey);
  const id = packet.getKeyID();
  const pkesks = message.packets.filterByTag(
    openpgp.enums.packet.publicKeyEncryptedSessionKey,
  ) as unknown as PkeskLike[];
  const mine = pkesks.find((p) => p.publicKeyAlgorithm === X25519 && p.publicKeyID.equals(id));
  if (!mine) return undefined;
  await mine.decrypt(packet);
  return {
    data: mine.sessionKey!,
    algorithm: openpgp.enums.read(openpgp.enums.symmetric, mine.sessionKeyAlgorithm) as 'aes256',
  };
}

/** The session key of a message through its PKESK to the entity key, or undefined. */
async function entitySessionKey(
  message: openpgp.Message<Uint8Array>,
  entityKey: openpgp.PrivateKey | undefined,
): Promise<SessionKey | undefined> {
  if (entityKey === undefined) return undefined;
  try {
    const [key] = await openpgp.decryptSessionKeys({ message, decryptionKeys: entityKey });
    return key?.algorithm === 'aes256' ? { data: key.data, algorithm: 'aes256' } : undefined;
  } catch {
    return undefined;
  }
}

/** Key ids (hex) of every PKESK packet of a binary OpenPGP message: whom it was wrapped for. */
export async function recipientKeyIds(binary: Uint8Array): Promise<string[]> {
  const message = await openpgp.readMessage({ binaryMessage: binary });
  return (
    message.packets.filterByTag(openpgp.enums.packet.publicKeyEncryptedSessionKey) as unknown as Array<{
      publicKeyID: { toHex(): string };
    }>
  ).map((p) => p.publicKeyID.toHex());
}

/**
 * Re-wraps a message's session key for more agents of the same entity: the session key is taken
 * from our own PKESK packet and wrapped again to each recipient key that has no packet yet, the new
 * packets placed before the existing ones; the SEIPD packet (the sender's signed data) is unchanged,
 * so the receiver still checks the sender's signature itself. How a sibling hands a delivered
 * message to an agent the sender did not know (a device added after it was sent) without that
 * agent needing the entity key (docs/protocol.md 16.3). Undefined when no packet is ours.
 */
export async function rewrapForAgents(
  binary: Uint8Array,
  own: { publicKey: Uint8Array; privateKey: Uint8Array },
  recipients: readonly AgentWrapKey[],
  entityKey?: openpgp.PrivateKey,
): Promise<Uint8Array | undefined> {
  const message = await openpgp.readMessage({ binaryMessage: binary });
  // Mail sealed to the entity key only (a sender that knew none of our agents, an agent before
  // r23): the device that holds the entity key opens it and wraps it for its siblings (7.8).
  const sessionKey = (await unwrapForAgent(message, own)) ?? (await entitySessionKey(message, entityKey));
  if (sessionKey === undefined) return undefined;
  const held = new Set(await recipientKeyIds(binary));
  const list = new pgp.PacketList();
  for (const recipient of recipients) {
    const packet = await rawKeyPacket('wrap', recipient);
    if (held.has(packet.getKeyID().toHex())) continue;
    const pkesk = pgp.PublicKeyEncryptedSessionKeyPacket.fromObject({
      version: 3,
      encryptionKeyPacket: packet,
      anonymousRecipient: false,
      sessionKey: sessionKey.data,
      sessionKeyAlgorithm: openpgp.enums.symmetric[sessionKey.algorithm],
    });
    await pkesk.encrypt(packet);
    delete pkesk.sessionKey;
    list.push(pkesk);
  }
  if (list.length === 0) return binary;
  return Buffer.concat([list.write(), binary]);
}

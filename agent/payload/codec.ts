import * as openpgp from 'openpgp';
import { KithError } from '../../common/errors.ts';
import { asFingerprint, type AgentId, type Fingerprint } from '../../common/ids.ts';
import { agentSignedMessage, verifyAgentSignature, type AgentSigner } from './agent-signature.ts';
import {
  sealOnce,
  sealToAgents,
  unwrapForAgent,
  wrapSessionKey,
  type AgentWrapKey,
  type SessionKey,
} from './wrap.ts';

/** What opening a sealed manifest yields. */
export interface Opened {
  plaintext: Buffer;
  /** The entity the sender claims to be (cleartext inside the recipient's onion layer). */
  sender: Fingerprint;
  /**
   * True only if the signature verified: made by an agent the sender entity certified and that is
   * not revoked (since r37), or by the entity key itself (before r37).
   */
  verified: boolean;
  /** The agent that signed, when an agent signature verified. */
  signedBy?: AgentId;
}

/**
 * End-to-end protection of the (small) manifest: sign by the sender entity, encrypt to the
 * recipient entity. Real nodes use openpgpCodec; the simulator may use plainCodec, which protects
 * nothing and exists so thousands of simulated agents need no OpenPGP keys.
 */
export interface PayloadCodec {
  /** Signs as our entity and encrypts to `to`. */
  seal(plaintext: Uint8Array, to: Fingerprint): Promise<Buffer>;
  /** Decrypts with our entity key and checks the sender's signature. Throws ERR_PAYLOAD_UNDECRYPTABLE. */
  open(sealed: Uint8Array): Promise<Opened>;
  /**
   * Wrap-once (docs/protocol.md 7.8, manifest version 2): signs and encrypts `plaintext` once;
   * `body` is the part every copy shares. A codec without it seals each copy whole.
   */
  sealShared?(plaintext: Uint8Array): Promise<{ sessionKey: SessionKey; body: Buffer }>;
  /**
   * The per-copy head for `to`: our fingerprint ‖ the session key wrapped to `to`'s keys only.
   * head ‖ body is a sealed manifest open() reads like any other.
   */
  wrapShared?(sessionKey: SessionKey, to: Fingerprint): Promise<Buffer>;
}

/**
 * Sealed form: sender fingerprint (20 bytes) | binary OpenPGP message (signed, then encrypted).
 * The fingerprint is only visible to the recipient (it sits inside the recipient's onion layer) and
 * says which key to verify with.
 */
export function openpgpCodec(deps: {
  /** Our entity's fingerprint (default: the entity key's). */
  self?: Fingerprint;
  /**
   * Our entity private key, decrypted, on the one device that holds it (docs/protocol.md 7.8):
   * opens mail sealed to the entity key only. It signs only when no `signer` is given.
   */
  entityKey?: openpgp.PrivateKey;
  /** This agent's own signing key and certificate: every message is signed by the sending agent. */
  signer?: AgentSigner;
  /** Whether an agent of a sender is revoked (its signatures then do not verify). */
  isRevokedAgent?: (agent: AgentId) => boolean;
  /** Public keys of entities we know (contacts); undefined when unknown. */
  publicKey: (fingerprint: Fingerprint) => Promise<openpgp.PublicKey | undefined>;
  /**
   * X25519 keys of the recipient entity's certified, unrevoked agents we hold (their
   * certificates' onion keys): the session key is wrapped once for each (wrap.ts). When there
   * are none the message is encrypted to the entity key, as before revision r23.
   */
  recipientAgents?: (fingerprint: Fingerprint) => AgentWrapKey[];
  /** This agent's own X25519 key pair (raw bytes): opens what was wrapped for this agent. */
  ownAgent?: { publicKey: Uint8Array; privateKey: Uint8Array };
  /**
   * Whether to fall back to the entity key for a message with no packet for our agent (sealed by
   * an agent before r23, or by a sender that knew none of our certificates). Default true where
   * the entity key is held.
   */
  entityKeyDecrypts?: boolean;
}): PayloadCodec {
  const signer = deps.signer ?? deps.entityKey;
  if (signer === undefined) throw new RangeError('openpgpCodec needs a signer or an entity key');
  const self = deps.self ?? asFingerprint(deps.entityKey!.getFingerprint());
  const isRevoked = deps.isRevokedAgent ?? (() => false);
  /** The recipient's public key; no key is the caller's to fix (add the contact). */
  async function recipientKey(to: Fingerprint) {
    const recipient = await deps.publicKey(to);
    if (!recipient) {
      throw new KithError(
        'ERR_UNKNOWN_RECIPIENT_KEY',
        `no public key for ${to}`,
        'add the recipient as a contact first',
      );
    }
    return recipient;
  }
  return {
    async seal(plaintext, to) {
      const recipient = await recipientKey(to);
      const agents = deps.recipientAgents?.(to) ?? [];
      if (agents.length > 0) {
        const sealed = await sealToAgents(plaintext, agents, signer, recipient);
        return Buffer.concat([Buffer.from(self, 'hex'), sealed]);
      }
      const sealed = (await openpgp.encrypt(
        'seed' in signer
          ? {
              message: await agentSignedMessage(plaintext, signer),
              encryptionKeys: recipient,
              format: 'binary',
            }
          : {
              message: await openpgp.createMessage({ binary: plaintext }),
              encryptionKeys: recipient,
              signingKeys: signer,
              format: 'binary',
            },
      )) as Uint8Array;
      return Buffer.concat([Buffer.from(self, 'hex'), sealed]);
    },
    async sealShared(plaintext) {
      const { sessionKey, body } = await sealOnce(plaintext, signer);
      return { sessionKey, body: Buffer.from(body) };
    },
    async wrapShared(sessionKey, to) {
      const recipient = await recipientKey(to);
      const head = await wrapSessionKey(sessionKey, deps.recipientAgents?.(to) ?? [], recipient);
      return Buffer.concat([Buffer.from(self, 'hex'), head]);
    },
    async open(sealed) {
      if (sealed.length < 21) throw new KithError('ERR_PAYLOAD_UNDECRYPTABLE', 'sealed manifest too short');
      const sender = Buffer.from(sealed.subarray(0, 20)).toString('hex').toUpperCase() as Fingerprint;
      const senderKey = await deps.publicKey(sender);
      let result;
      try {
        const message = await openpgp.readMessage({ binaryMessage: sealed.subarray(20) });
        const sessionKey = deps.ownAgent ? await unwrapForAgent(message, deps.ownAgent) : undefined;
        if (!sessionKey && (deps.entityKey === undefined || deps.entityKeyDecrypts === false))
          throw new Error('not wrapped for this agent, and this device holds no entity key');
        result = await openpgp.decrypt({
          message,
          ...(sessionKey ? { sessionKeys: sessionKey } : { decryptionKeys: deps.entityKey! }),
          verificationKeys: senderKey ? [senderKey] : [],
          format: 'binary',
        });
      } catch (err) {
        throw new KithError(
          'ERR_PAYLOAD_UNDECRYPTABLE',
          'the message does not decrypt with our key',
          undefined,
          {
            cause: err,
          },
        );
      }
      const plaintext = Buffer.from(result.data as Uint8Array);
      let verified = false;
      let signedBy: AgentId | undefined;
      if (senderKey && result.signatures.length > 0) {
        try {
          await result.signatures[0].verified; // by the entity key (before r37)
          verified = true;
        } catch {
          // By one of the sender's agents (since r37): its certificate rides in the signature.
          const signature = await result.signatures[0].signature.catch(() => undefined);
          const cert =
            signature && (await verifyAgentSignature(signature.packets[0], plaintext, senderKey, isRevoked));
          verified = cert !== undefined;
          signedBy = cert?.body.agent;
        }
      }
      return { plaintext, sender, verified, ...(signedBy === undefined ? {} : { signedBy }) };
    },
  };
}

/** Simulator only: no encryption, no signature; `verified` is always false. */
export function plainCodec(self: Fingerprint): PayloadCodec {
  return {
    async seal(plaintext) {
      return Buffer.concat([Buffer.from(self, 'hex'), plaintext]);
    },
    // head ‖ body = fingerprint ‖ plaintext, what seal() makes.
    async sealShared(plaintext) {
      return { sessionKey: { data: new Uint8Array(32), algorithm: 'aes256' }, body: Buffer.from(plaintext) };
    },
    async wrapShared() {
      return Buffer.from(self, 'hex');
    },
    async open(sealed) {
      if (sealed.length < 20) throw new KithError('ERR_PAYLOAD_UNDECRYPTABLE', 'sealed manifest too short');
      return {
        plaintext: Buffer.from(sealed.subarray(20)),
        sender: Buffer.from(sealed.subarray(0, 20)).toString('hex').toUpperCase() as Fingerprint,
        verified: false,
      };
    },
  };
}

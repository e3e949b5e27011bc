import { createHash } from 'node:crypto';
import type * as openpgp from 'openpgp';
import type { Fingerprint, MessageId } from '../../common/ids.ts';
import { prepareInbound } from '../../gateway/inbound.ts';
import { toCrlf } from '../../gateway/mailbox/decisions.ts';
import type { PayloadCodec } from '../payload/codec.ts';
import { decodeManifest } from '../payload/manifest.ts';
import { rewrapForAgents, type AgentWrapKey } from '../payload/wrap.ts';
import type { SyncStore } from './store.ts';

export interface SealedFormsOptions {
  store: SyncStore;
  /** The node's end-to-end codec: opens with this agent's own key (agent/payload/wrap.ts). */
  codec: PayloadCodec;
  self: Fingerprint;
  /** What the trust store knows of a sender, as the node's receive() puts it in the headers. */
  sender: (fingerprint: Fingerprint) => { email?: string; name?: string; keyKnown: boolean };
  /** The local bytes of a message by content hash (MailboxBridge.readBlob). */
  readBlob: (hash: string) => Promise<Buffer | undefined>;
  authservId?: string;
  /**
   * This agent's own X25519 key pair (raw bytes): with it, a sealed form handed to a sibling is
   * re-wrapped for that sibling's key when the sender did not wrap it for it (wrap.ts).
   */
  own?: { publicKey: Uint8Array; privateKey: Uint8Array };
  /** The entity private key, on the one device that holds it: opens mail sealed to it alone. */
  entityKey?: openpgp.PrivateKey;
}

/**
 * Delivered messages travel between siblings as the ciphertext they arrived in (docs/protocol.md
 * 16.3, kinds 5 and 6): a message to the entity is encrypted once for all its certified agents
 * (7.8), so a sibling opens the same bytes with its own agent key, checks the sender's signature
 * itself and writes the gateway's headers (section 10) as its own gateway would. Only inline
 * payloads rebuild; anything else (a file notice, a sender known differently here) does not
 * match the hash, and the plain bytes are asked for.
 */
export class SealedForms {
  constructor(private readonly o: SealedFormsOptions) {}

  /** Keeps the sealed manifest of a message as it was delivered here. */
  keep(id: MessageId, sealed: Buffer): void {
    this.o.store.putSealed(id, sealed, Date.now());
  }

  /**
   * keep() without a commit of its own: queued before the mailbox append of the same message,
   * so committed with it or earlier (one fsync for both at the recipient, bench/RESULTS.md 10.8).
   */
  keepSoon(id: MessageId, sealed: Buffer): Promise<void> {
    return this.o.store.putSealedSoon(id, sealed, Date.now());
  }

  /**
   * The sealed form of the local message with this hash, when it was delivered and kept; for
   * `forKey` (the asking sibling's wrap key) with the session key wrapped for it as well, so a
   * device the sender did not know of opens it with its own key, not the entity's.
   */
  async read(hash: string, forKey?: AgentWrapKey): Promise<Buffer | undefined> {
    const sealed = await this.readKept(hash);
    if (sealed === undefined || forKey === undefined || this.o.own === undefined) return sealed;
    try {
      const rewrapped = await rewrapForAgents(sealed.subarray(20), this.o.own, [forKey], this.o.entityKey);
      // Not ours to open either (sealed to the entity key, not held here): the sibling then asks
      // for the plain bytes (kind 6), which is how it reads mail from before r23 too.
      return rewrapped === undefined ? sealed : Buffer.concat([sealed.subarray(0, 20), rewrapped]);
    } catch {
      return sealed;
    }
  }

  private async readKept(hash: string): Promise<Buffer | undefined> {
    const bytes = await this.o.readBlob(hash);
    if (bytes === undefined) return undefined;
    const end = bytes.indexOf('\r\n\r\n');
    const header = bytes.subarray(0, end === -1 ? Math.min(bytes.length, 65_536) : end).toString('latin1');
    const id = /^X-Kith-Message-Id:[ \t]*([0-9a-f]{32})\r?$/im.exec(header)?.[1];
    return id === undefined ? undefined : this.o.store.sealed(id);
  }

  /** Opens a sibling's sealed form and rebuilds the stored message, or undefined. */
  async open(hash: string, sealed: Buffer): Promise<Buffer | undefined> {
    let opened;
    try {
      opened = await this.o.codec.open(sealed);
    } catch {
      return undefined; // not wrapped for this agent's key (a sender that did not know it)
    }
    let decoded;
    try {
      decoded = decodeManifest(opened.plaintext);
    } catch {
      return undefined;
    }
    const { manifest, inline } = decoded;
    if (manifest.chunks !== 0 || manifest.to !== this.o.self || manifest.from !== opened.sender)
      return undefined;
    if (createHash('sha256').update(inline).digest('hex') !== manifest.sha256) return undefined;
    const who = this.o.sender(opened.sender);
    const stored = toCrlf(
      prepareInbound(
        {
          id: manifest.id,
          raw: inline,
          sender: { fingerprint: opened.sender, email: who.email, name: who.name },
          verified: opened.verified,
          senderKeyKnown: who.keyKnown,
          receivedAt: new Date(),
        },
        this.o.authservId,
      ),
    );
    if (createHash('sha256').update(stored).digest('hex') !== hash) return undefined;
    this.keep(manifest.id, sealed); // a third sibling gets the same bytes from us
    return stored;
  }
}

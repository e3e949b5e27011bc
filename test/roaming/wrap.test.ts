import { generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from '@jest/globals';
import * as openpgp from 'openpgp';
import { type Fingerprint } from '../../common/ids.ts';
import { openpgpCodec, type PayloadCodec } from '../../agent/payload/codec.ts';
import {
  rawX25519,
  recipientKeyIds,
  rewrapForAgents,
  wrapKeyId,
  wrapKeysOf,
} from '../../agent/payload/wrap.ts';
import { testEntityKey } from '../helpers/entity-key.ts';

/** An agent's X25519 key pair as raw bytes (what its certificate names as onionKey). */
function agentKeys() {
  const k = generateKeyPairSync('x25519');
  return { publicKey: rawX25519(k.publicKey, 'public'), privateKey: rawX25519(k.privateKey, 'private') };
}

const entity = (email: string) => testEntityKey(email);

describe('encrypt once, the session key wrapped for each certified agent of the recipient', () => {
  let bob: Awaited<ReturnType<typeof entity>>;
  let alice: Awaited<ReturnType<typeof entity>>;
  const laptop = agentKeys();
  const home = agentKeys();
  const stranger = agentKeys();
  let sealed: Buffer;
  let keys: Map<Fingerprint, openpgp.PublicKey>;
  /** Alice's codec on one device: its own agent key only, never the entity key (no fallback). */
  const device = (own: { publicKey: Uint8Array; privateKey: Uint8Array }): PayloadCodec =>
    openpgpCodec({
      entityKey: alice.key,
      publicKey: async (f) => keys.get(f),
      ownAgent: own,
      entityKeyDecrypts: false,
    });

  beforeAll(async () => {
    [alice, bob] = [await entity('alice@wrap.kith'), await entity('bob@wrap.kith')];
    keys = new Map([
      [alice.fpr, alice.key.toPublic()],
      [bob.fpr, bob.key.toPublic()],
    ]);
    const bobCodec = openpgpCodec({
      entityKey: bob.key,
      publicKey: async (f) => keys.get(f),
      recipientAgents: (f) => (f === alice.fpr ? [laptop.publicKey, home.publicKey] : []),
    });
    sealed = await bobCodec.seal(Buffer.from('one ciphertext for every device'), alice.fpr);
  });

  it('the one ciphertext carries one wrapped key per agent (and one for the entity key) and opens on each with that agent key alone', async () => {
    expect((await recipientKeyIds(sealed.subarray(20))).sort()).toEqual(
      [
        await wrapKeyId(laptop.publicKey),
        await wrapKeyId(home.publicKey),
        (await alice.key.toPublic().getEncryptionKey()).getKeyID().toHex(),
      ].sort(),
    );
    for (const own of [laptop, home]) {
      const opened = await device(own).open(sealed);
      expect(opened.plaintext.toString()).toBe('one ciphertext for every device');
      expect(opened.sender).toBe(bob.fpr);
      expect(opened.verified).toBe(true);
    }
  });

  it('an agent it was not wrapped for does not open it on its own key', async () => {
    await expect(device(stranger).open(sealed)).rejects.toMatchObject({ code: 'ERR_PAYLOAD_UNDECRYPTABLE' });
  });

  it('a device of the recipient the sender did not know of yet reads it with the entity key (wrap.ts, why)', async () => {
    const newDevice = openpgpCodec({
      entityKey: alice.key,
      publicKey: async (f) => keys.get(f),
      ownAgent: stranger,
    });
    const opened = await newDevice.open(sealed);
    expect(opened.plaintext.toString()).toBe('one ciphertext for every device');
    expect(opened.verified).toBe(true);
  });

  it('a sibling re-wraps the session key for a device the sender did not know: it reads with its own key alone', async () => {
    const phone = agentKeys();
    await expect(device(phone).open(sealed)).rejects.toMatchObject({ code: 'ERR_PAYLOAD_UNDECRYPTABLE' });
    // The laptop, asked by the phone for this message (docs/protocol.md 16.3), adds a packet for it.
    const body = await rewrapForAgents(sealed.subarray(20), laptop, [phone.publicKey, home.publicKey]);
    const handed = Buffer.concat([sealed.subarray(0, 20), body!]);
    const ids = await recipientKeyIds(handed.subarray(20));
    expect(ids).toContain(await wrapKeyId(phone.publicKey));
    expect(ids.length).toBe(4); // laptop, home, entity key, and the phone's new one (home had one)
    const opened = await device(phone).open(handed);
    expect(opened.plaintext.toString()).toBe('one ciphertext for every device');
    // The sender's signature is untouched: the phone checks bob's, not the laptop's word.
    expect(opened.sender).toBe(bob.fpr);
    expect(opened.verified).toBe(true);
    // Only an agent that can open it can re-wrap it.
    expect(await rewrapForAgents(sealed.subarray(20), stranger, [phone.publicKey])).toBeUndefined();
  });

  it('a wrapped key altered on the way does not open (the message is refused, not misread)', async () => {
    const damaged = Buffer.from(sealed);
    damaged[40] ^= 0x01; // inside the first PKESK packet
    await expect(device(laptop).open(damaged)).rejects.toMatchObject({ code: 'ERR_PAYLOAD_UNDECRYPTABLE' });
  });

  it('wraps only for agents whose certificate is valid and not revoked', () => {
    const now = Date.parse('2026-12-03T12:00:00Z');
    const agent = (revoked: boolean, notAfter: number) => ({
      onionKey: Buffer.alloc(32, notAfter % 251),
      revoked,
      notBefore: now - 1000,
      notAfter,
    });
    expect(
      wrapKeysOf([agent(false, now + 1000), agent(true, now + 2000), agent(false, now - 1)], now),
    ).toEqual([new Uint8Array(Buffer.alloc(32, (now + 1000) % 251))]);
  });

  it('without known agents the message is sealed to the entity key, as before', async () => {
    const plain = openpgpCodec({ entityKey: bob.key, publicKey: async (f) => keys.get(f) });
    const toEntity = await plain.seal(Buffer.from('old form'), alice.fpr);
    const opened = await openpgpCodec({ entityKey: alice.key, publicKey: async (f) => keys.get(f) }).open(
      toEntity,
    );
    expect(opened.plaintext.toString()).toBe('old form');
  });
});

import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as openpgp from 'openpgp';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { callNode } from '../../agent/control/client.ts';
import { certifyAgent } from '../../agent/identity/certificate.ts';
import { holdsEntityKey } from '../../agent/identity/identity.ts';
import { agentSignerOf, type AgentSigner } from '../../agent/payload/agent-signature.ts';
import { openpgpCodec } from '../../agent/payload/codec.ts';
import { rawX25519, recipientKeyIds, rewrapForAgents, wrapKeyId } from '../../agent/payload/wrap.ts';
import { asAgentId, type AgentId, type Fingerprint } from '../../common/ids.ts';
import { messagesContaining, send } from '../agents/network.ts';
import { until } from '../helpers/until.ts';
import { startEntity, type Entity } from './entity.ts';
import { testEntityKey } from '../helpers/entity-key.ts';

// "No shared private key" (docs/protocol.md 7.8, r37): an ordinary device holds only its own agent
// keys and its certificate. It signs with its agent key (the certificate rides in the signature),
// opens what is wrapped for its own X25519 key, and gets mail sealed to the entity key alone
// re-wrapped by the sibling that holds the entity key.

const entity = (email: string) => testEntityKey(email);

/** One agent of `of`: its signer (Ed25519 key + certificate) and its X25519 wrap key pair. */
async function device(of: openpgp.PrivateKey) {
  const agentKey = await generateKeyPair('Ed25519');
  const x = generateKeyPairSync('x25519');
  const own = { publicKey: rawX25519(x.publicKey, 'public'), privateKey: rawX25519(x.privateKey, 'private') };
  const now = Date.now();
  const certificate = await certifyAgent(of, {
    agent: asAgentId(peerIdFromPrivateKey(agentKey).toString()),
    onionKey: Buffer.from(own.publicKey).toString('base64url'),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
  });
  const signer: AgentSigner = agentSignerOf(agentKey, () => certificate);
  return { id: certificate.body.agent, signer, own, certificate };
}

describe('agent signatures and wrapping without the entity private key (codec)', () => {
  let alice: Awaited<ReturnType<typeof entity>>;
  let bob: Awaited<ReturnType<typeof entity>>;
  let mallory: Awaited<ReturnType<typeof entity>>;
  let keys: Map<Fingerprint, openpgp.PublicKey>;
  const revoked = new Set<AgentId>();
  /** A device of an entity as the node builds it without the entity key: signer and own key only. */
  const codecOf = (self: Fingerprint, d: Awaited<ReturnType<typeof device>>, wrapFor: Uint8Array[] = []) =>
    openpgpCodec({
      self,
      signer: d.signer,
      ownAgent: d.own,
      isRevokedAgent: (a) => revoked.has(a),
      publicKey: async (f) => keys.get(f),
      recipientAgents: () => wrapFor,
    });

  beforeAll(async () => {
    [alice, bob, mallory] = [
      await entity('alice@nokey.kith'),
      await entity('bob@nokey.kith'),
      await entity('mallory@nokey.kith'),
    ];
    keys = new Map([
      [alice.fpr, alice.key.toPublic()],
      [bob.fpr, bob.key.toPublic()],
      [mallory.fpr, mallory.key.toPublic()],
    ]);
  });

  it("a device with no entity key seals, signed by its agent; the recipient verifies it against the sender entity's key", async () => {
    const laptop = await device(alice.key);
    const bobPhone = await device(bob.key);
    const sealed = await codecOf(alice.fpr, laptop, [bobPhone.own.publicKey]).seal(
      Buffer.from('hi bob'),
      bob.fpr,
    );
    const opened = await codecOf(bob.fpr, bobPhone).open(sealed);
    expect(opened.plaintext.toString()).toBe('hi bob');
    expect(opened.sender).toBe(alice.fpr);
    expect(opened.verified).toBe(true);
    expect(opened.signedBy).toBe(laptop.id);
    // Also when the sender knows none of the recipient's agents (sealed to the entity key).
    const toEntity = await codecOf(alice.fpr, laptop).seal(Buffer.from('to the entity'), bob.fpr);
    const byKeyholder = openpgpCodec({ entityKey: bob.key, publicKey: async (f) => keys.get(f) });
    expect(await byKeyholder.open(toEntity)).toMatchObject({ verified: true, signedBy: laptop.id });
  });

  it("an agent signature is not verified when its certificate is another entity's, or the agent is revoked", async () => {
    const bobPhone = await device(bob.key);
    // Mallory's own agent, claiming to be alice: its certificate is signed by mallory's key.
    const impostor = await device(mallory.key);
    const forged = await codecOf(alice.fpr, impostor, [bobPhone.own.publicKey]).seal(
      Buffer.from('x'),
      bob.fpr,
    );
    expect(await codecOf(bob.fpr, bobPhone).open(forged)).toMatchObject({
      sender: alice.fpr,
      verified: false,
    });
    // Alice's lost laptop, revoked: what it signs no longer verifies.
    const lost = await device(alice.key);
    const sealed = await codecOf(alice.fpr, lost, [bobPhone.own.publicKey]).seal(Buffer.from('y'), bob.fpr);
    expect((await codecOf(bob.fpr, bobPhone).open(sealed)).verified).toBe(true);
    revoked.add(lost.id);
    expect((await codecOf(bob.fpr, bobPhone).open(sealed)).verified).toBe(false);
  });

  it('mail sealed to the entity key alone does not open on a device without it; the key holder re-wraps it for that device', async () => {
    const home = await device(alice.key);
    const laptop = await device(alice.key);
    const bobPhone = await device(bob.key);
    // Bob knew none of alice's agents: only a PKESK to her entity key.
    const sealed = await codecOf(bob.fpr, bobPhone).seal(Buffer.from('old-style mail'), alice.fpr);
    await expect(codecOf(alice.fpr, laptop).open(sealed)).rejects.toMatchObject({
      code: 'ERR_PAYLOAD_UNDECRYPTABLE',
    });
    // Without the entity key home cannot re-wrap it; with it (the key holder), it can.
    expect(await rewrapForAgents(sealed.subarray(20), home.own, [laptop.own.publicKey])).toBeUndefined();
    const body = await rewrapForAgents(sealed.subarray(20), home.own, [laptop.own.publicKey], alice.key);
    const handed = Buffer.concat([sealed.subarray(0, 20), body!]);
    expect(await recipientKeyIds(handed.subarray(20))).toContain(await wrapKeyId(laptop.own.publicKey));
    const opened = await codecOf(alice.fpr, laptop).open(handed);
    expect(opened.plaintext.toString()).toBe('old-style mail');
    expect(opened).toMatchObject({ sender: bob.fpr, verified: true, signedBy: bobPhone.id });
  });
});

describe('roaming: a device that holds no entity private key receives, reads, syncs and sends', () => {
  let alice: Entity;
  let bob: Entity;
  beforeAll(async () => {
    // home made the entity; the laptop was imported from an agent bundle without --keep-entity-key.
    alice = await startEntity(['home', 'laptop']);
    await alice.link('laptop', 'home');
    bob = await startEntity(['bob']);
    await bob
      .node('bob')
      .links.acceptInvitation(alice.node('home').links.createInvitation({ ttlMs: 60_000 }));
  });
  afterAll(async () => {
    await bob?.close();
    await alice?.close();
  });

  it('the laptop keeps no entity private key, on disk or in memory, and starts again from its data directory without it', async () => {
    expect(holdsEntityKey(alice.node('home').db)).toBe(true);
    expect(holdsEntityKey(alice.node('laptop').db)).toBe(false);
    const row = alice.node('laptop').db.prepare('SELECT private_key FROM entity').get() as {
      private_key: string;
    };
    expect(row.private_key).toBe('');
    await alice.stop('laptop');
    await alice.start('laptop');
    await alice.link('laptop', 'home');
    expect(alice.node('laptop').identity.entityKey).toBeUndefined();
    expect(alice.node('laptop').identity.fingerprint).toBe(alice.node('home').identity.fingerprint);
  });

  it("bob's mail reaches the laptop and reads there with the laptop's own key", async () => {
    await send(bob.node('bob'), alice.node('home'), { text: 'for every device\nread me anywhere' });
    const [onLaptop] = await until(async () => {
      const found = await messagesContaining(alice.node('laptop'), 'read me anywhere');
      return found.length > 0 ? found : undefined;
    }, 'on the laptop');
    expect(onLaptop.toString()).toMatch(/kith=pass/);
    expect(alice.node('laptop').roaming.engine.counters.sealedReceived).toBeGreaterThanOrEqual(1);
  });

  it("the laptop sends to bob; bob verifies the signature of the laptop agent against alice's key", async () => {
    await send(alice.node('laptop'), bob.node('bob'), { text: 'from the laptop\nsigned by its agent key' });
    const [got] = await until(async () => {
      const found = await messagesContaining(bob.node('bob'), 'signed by its agent key');
      return found.length > 0 ? found : undefined;
    }, 'at bob');
    expect(got.toString()).toMatch(/kith=pass/);
  });

  it('acts that need the entity key are refused on the laptop with a reason, and still work on home', async () => {
    const sock = (name: string) => join(alice.node(name).paths.root, 'control.sock');
    await expect(callNode(sock('laptop'), 'agent.add', {})).rejects.toMatchObject({
      code: 'ERR_NO_ENTITY_KEY',
    });
    await expect(
      callNode(sock('laptop'), 'agent.revoke', { agent: alice.node('home').identity.agentId }),
    ).rejects.toMatchObject({ code: 'ERR_NO_ENTITY_KEY' });
    const added = await callNode<{ agentId: string }>(sock('home'), 'agent.add', {});
    expect(added.agentId).toMatch(/^12D3/);
  });
});

import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type AddressInfo } from 'node:net';
import { revokeAgentCertificate } from '../../agent/trust/index.ts';
import {
  eventually,
  removeTempDirs,
  startAgent,
  startSibling,
  startAgentWith,
  type TestAgent,
} from './helpers.ts';

const running: TestAgent[] = [];
function track(a: TestAgent): TestAgent {
  running.push(a);
  return a;
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
});
afterAll(removeTempDirs);

async function linkedPair(): Promise<[TestAgent, TestAgent]> {
  const alice = track(await startAgent('alice'));
  const bob = track(await startAgent('bob'));
  await bob.links.acceptInvitation(alice.links.createInvitation({ ttlMs: 60_000 }));
  await eventually(() => alice.links.isLinked(bob.identity.agentId), 'linked');
  return [alice, bob];
}

describe('links: revocation, several agents per entity, trust by fingerprint', () => {
  it('revoke closes the open link at once and refuses new ones', async () => {
    const [alice, bob] = await linkedPair();
    const revoked = alice.links.revoke(bob.identity.fingerprint);
    expect(revoked.trusted).toBe(false);
    expect(alice.links.isLinked(bob.identity.agentId)).toBe(false);
    await eventually(() => !bob.links.isLinked(alice.identity.agentId), 'bob sees the link close');
    await expect(bob.links.dial(alice.address())).rejects.toThrow();
    await eventually(
      () => alice.links.libp2p.getConnections(bob.links.libp2p.peerId).length === 0,
      'alice holds no connection from bob',
    );
    await expect(bob.links.transport.send(alice.identity.agentId, Buffer.from('x'))).rejects.toMatchObject({
      code: 'ERR_NO_LINK',
    });
    expect(alice.links.contacts()[0]).toMatchObject({ trusted: false, revoked: true });
  });

  it('a new agent’s streams opened before its hello is checked wait for it instead of being refused (libp2p’s ping would cut the connection)', async () => {
    const [alice, bob] = await linkedPair();
    // Bob has never seen the laptop's certificate: it is provisional at bob until its hello.
    const laptop = track(await startSibling(alice, 'alice-laptop'));
    let pinged: Promise<number> | undefined;
    laptop.links.libp2p.addEventListener('connection:open', ({ detail: connection }) => {
      // As libp2p's connection monitor does, whatever the connection's age: a ping right away.
      pinged ??= laptop.links.libp2p.services.ping.ping(connection.remotePeer);
    });
    await laptop.links.trust(bob.identity.fingerprint, { addresses: [bob.address()] });
    await expect(pinged).resolves.toEqual(expect.any(Number));
    await eventually(() => bob.links.isLinked(laptop.identity.agentId), 'bob links with the laptop');
    expect(laptop.links.isLinked(bob.identity.agentId)).toBe(true);
  });

  it("a trusted entity's second agent is accepted; once its certificate is revoked it is refused", async () => {
    const [alice, bob] = await linkedPair();
    // Alice's entity certifies a second device; her first agent tells its neighbours.
    const laptop = track(await startSibling(alice, 'alice-laptop'));
    await alice.trust.addAgentCertificate(laptop.identity.certificate);
    await eventually(
      () => bob.trust.isTrustedAgent(laptop.identity.agentId),
      'bob learns the new certificate',
    );
    // The laptop has its own trust store: it trusts bob by fingerprint, checked out of band.
    await laptop.links.trust(bob.identity.fingerprint, { addresses: [bob.address()] });
    expect(laptop.links.isLinked(bob.identity.agentId)).toBe(true);
    await eventually(() => bob.links.isLinked(laptop.identity.agentId), 'bob links with the laptop');
    expect(laptop.links.contacts()[0]).toMatchObject({ email: 'bob@example.org', trusted: true });
    const got: string[] = [];
    bob.links.transport.onFrame((from, frame) => void got.push(`${from}:${Buffer.from(frame)}`));
    await laptop.links.transport.send(bob.identity.agentId, Buffer.from('from the laptop'));
    await eventually(() => got.length === 1, 'frame from the laptop');
    expect(got).toEqual([`${laptop.identity.agentId}:from the laptop`]);

    // The laptop is lost: the entity revokes its certificate; the revocation travels to bob.
    const revocation = await revokeAgentCertificate(alice.identity.entityKey!, laptop.identity.agentId);
    await alice.trust.addAgentRevocation(revocation);
    await eventually(() => bob.trust.isRevokedAgent(laptop.identity.agentId), 'bob learns the revocation');
    await eventually(() => !bob.links.isLinked(laptop.identity.agentId), 'bob drops the laptop link');
    await eventually(() => !laptop.links.isLinked(bob.identity.agentId), 'the laptop sees it closed');
    await expect(laptop.links.dial(bob.address())).rejects.toThrow();
    expect(bob.links.isLinked(alice.identity.agentId)).toBe(true);
  });

  it("a trusted entity's new agent links on its own, with every other agent of its entity offline", async () => {
    const [alice, bob] = await linkedPair();
    let frames = 0;
    bob.links.transport.onFrame(() => void frames++);
    // Alice's home agent goes away; the laptop, certified by the same entity key, has never been
    // seen by bob: only the certificate in its hello can admit it.
    await alice.stop();
    running.splice(running.indexOf(alice), 1);
    const laptop = track(await startSibling(alice, 'alice-laptop'));
    expect(bob.trust.agent(laptop.identity.agentId)).toBeUndefined();
    await laptop.links.trust(bob.identity.fingerprint, { addresses: [bob.address()] });
    expect(laptop.links.isLinked(bob.identity.agentId)).toBe(true);
    await eventually(() => bob.links.isLinked(laptop.identity.agentId), 'bob links with the new laptop');
    expect(bob.trust.isTrustedAgent(laptop.identity.agentId)).toBe(true);
    await laptop.links.transport.send(bob.identity.agentId, Buffer.from('new laptop'));
    await eventually(() => frames === 1, 'a frame from the new laptop');
  });

  it('an agent revocation reaches a neighbour that trusts the entity but never links with it', async () => {
    const [alice, bob] = await linkedPair();
    const laptop = track(await startSibling(alice, 'alice-laptop'));
    // Carol trusts alice (fingerprint checked long ago) but is linked only with bob.
    const carol = track(await startAgent('carol'));
    await carol.trust.addEntity(alice.identity.entityPublicArmored, {
      trusted: true,
      contact: true,
      source: 'fingerprint',
    });
    await carol.links.acceptInvitation(bob.links.createInvitation({ ttlMs: 60_000 }));
    await eventually(() => bob.links.isLinked(carol.identity.agentId), 'bob and carol linked');
    expect(carol.links.isLinked(alice.identity.agentId)).toBe(false);

    // The laptop is lost; alice revokes it while linked only with bob.
    const revocation = await revokeAgentCertificate(alice.identity.entityKey!, laptop.identity.agentId);
    await alice.trust.addAgentRevocation(revocation);
    await eventually(() => bob.trust.isRevokedAgent(laptop.identity.agentId), 'bob learns it');
    await eventually(() => carol.trust.isRevokedAgent(laptop.identity.agentId), 'carol learns it from bob');
    expect(carol.links.isLinked(alice.identity.agentId)).toBe(false);

    // The stolen laptop, with a certificate signed by alice, tries carol: refused.
    await laptop.links.trust(carol.identity.fingerprint, { addresses: [carol.address()] });
    await eventually(
      () => carol.links.libp2p.getConnections(laptop.links.libp2p.peerId).length === 0,
      'carol holds no connection from the laptop',
    );
    expect(laptop.links.isLinked(carol.identity.agentId)).toBe(false);
    expect(carol.links.isLinked(laptop.identity.agentId)).toBe(false);
    expect(carol.trust.isTrustedAgent(laptop.identity.agentId)).toBe(false);
  });

  it('an agent certified by an untrusted entity is refused', async () => {
    const [, bob] = await linkedPair();
    const mallory = track(await startAgent('mallory'));
    mallory.trust.trustFingerprint(bob.identity.fingerprint);
    await expect(mallory.links.dial(bob.address())).rejects.toThrow();
    await eventually(
      () => bob.links.libp2p.getConnections(mallory.links.libp2p.peerId).length === 0,
      'bob holds no connection from mallory',
    );
    expect(bob.links.isLinked(mallory.identity.agentId)).toBe(false);
  });

  it('trusting a fingerprint links only with agents of that entity', async () => {
    const [alice, bob] = await linkedPair();
    const carol = track(await startAgent('carol'));
    // Carol was given alice's fingerprint but bob's address: the agent there is not alice's.
    bob.trust.trustFingerprint(carol.identity.fingerprint);
    carol.trust.trustFingerprint(alice.identity.fingerprint);
    await expect(carol.links.dial(bob.address())).rejects.toMatchObject({ code: 'ERR_NOT_TRUSTED' });
    expect(carol.trust.entity(bob.identity.fingerprint)).toBeUndefined();
    expect(carol.links.isLinked(bob.identity.agentId)).toBe(false);
  });

  it('an address given to trust is dialled again later when the entity was offline at trust time', async () => {
    const port = await freePort();
    const bob = track(await startAgent('bob'));
    const alice0 = await startAgent('alice', { listen: [`/ip4/127.0.0.1/tcp/${port}`] });
    const fingerprint = alice0.identity.fingerprint;
    const identity = alice0.identity;
    await alice0.stop();
    const hint = `/ip4/127.0.0.1/tcp/${port}`;
    const result = await bob.links.trust(fingerprint, { addresses: [hint] });
    expect(result.linked).toBeUndefined();
    expect(result.unreachable).toEqual([{ address: hint, error: 'ERR_DIAL_FAILED' }]);
    await expect(bob.reach.reach(fingerprint)).rejects.toMatchObject({ code: 'ERR_UNREACHABLE' });
    // Alice comes online at that address; nothing but the hint tells bob where she is.
    const alice = track(await startAgentWith('alice', identity, { listen: [hint] }));
    alice.trust.trustFingerprint(bob.identity.fingerprint);
    const agent = await bob.reach.reach(fingerprint);
    expect(agent).toBe(alice.identity.agentId);
    expect(bob.links.isLinked(alice.identity.agentId)).toBe(true);
    expect(bob.trust.entity(fingerprint)).toMatchObject({ email: 'alice@example.org', trusted: true });
  });

  it('trust with a DNS address (DynDNS) links: the name is resolved for the gater too', async () => {
    const alice = track(await startAgent('alice'));
    const bob = track(await startAgent('bob'));
    alice.trust.trustFingerprint(bob.identity.fingerprint);
    const port = alice.address().split('/')[4];
    const result = await bob.links.trust(alice.identity.fingerprint, {
      addresses: [`/dns4/localhost/tcp/${port}`],
    });
    expect(result.unreachable).toEqual([]);
    expect(result.linked).toEqual({ agent: alice.identity.agentId, address: `/dns4/localhost/tcp/${port}` });
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

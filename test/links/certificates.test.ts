import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { describeStoredIdentity } from '../../agent/identity/identity.ts';
import { createNode, type KithLibp2p } from '../../agent/links/node.ts';
import { certificateRenewalDue } from '../../agent/trust/decisions.ts';
import {
  eventually,
  removeTempDirs,
  startAgent,
  startSibling,
  type LinkOptions,
  type TestAgent,
} from './helpers.ts';

const DAY = 86_400_000;
const running: TestAgent[] = [];
async function agent(name: string, options: LinkOptions = {}): Promise<TestAgent> {
  const a = await startAgent(name, {}, options);
  running.push(a);
  return a;
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
});
afterAll(removeTempDirs);

async function linked(a: TestAgent, b: TestAgent): Promise<void> {
  await b.links.acceptInvitation(a.links.createInvitation({ ttlMs: 60_000 }));
  await eventually(() => a.links.isLinked(b.identity.agentId), 'linked');
}

describe('links: certificate lifetime', () => {
  it('renewal is due in the last 30 days of a certificate, and after its end', () => {
    const notAfter = 1_000 * DAY;
    expect(certificateRenewalDue(notAfter, notAfter - 31 * DAY)).toBe(false);
    expect(certificateRenewalDue(notAfter, notAfter - 29 * DAY)).toBe(true);
    expect(certificateRenewalDue(notAfter, notAfter + DAY)).toBe(true);
  });

  it('a link whose certificate runs out mid-link is closed', async () => {
    const bobClock = { now: Date.now() + 60_000 };
    const alice = await agent('alice');
    const bob = await agent('bob', { clock: () => bobClock.now });
    await linked(alice, bob);
    bobClock.now += 366 * DAY;
    expect(bob.trust.isTrustedAgent(alice.identity.agentId)).toBe(false);
    await bob.links.checkCertificates();
    expect(bob.links.isLinked(alice.identity.agentId)).toBe(false);
    await eventually(() => !alice.links.isLinked(bob.identity.agentId), 'alice sees the link close');
  });

  it('an agent renews its certificate a month before the end and its neighbours keep it', async () => {
    const clock = { now: Date.now() + 60_000 };
    const alice = await agent('alice', { clock: () => clock.now });
    const bob = await agent('bob', { clock: () => clock.now });
    await linked(alice, bob);
    const first = bob.trust.agent(alice.identity.agentId)!.notAfter;

    clock.now += 340 * DAY;
    await alice.links.checkCertificates();
    expect(Date.parse(alice.identity.certificate.body.notAfter)).toBeGreaterThan(first);
    // `kith id` reads the stored identity: it shows the renewed certificate.
    expect(describeStoredIdentity(alice.db).notAfter).toBe(alice.identity.certificate.body.notAfter);
    await eventually(
      () => bob.trust.agent(alice.identity.agentId)!.notAfter > first,
      'bob holds the renewed certificate',
    );
    await bob.links.checkCertificates(); // bob renews his too

    // Past the first certificates' end both are still trusted, and the link stays up.
    clock.now += 30 * DAY;
    await alice.links.checkCertificates();
    await bob.links.checkCertificates();
    expect(bob.trust.isTrustedAgent(alice.identity.agentId)).toBe(true);
    expect(alice.trust.isTrustedAgent(bob.identity.agentId)).toBe(true);
    expect(bob.links.isLinked(alice.identity.agentId)).toBe(true);
    expect(alice.links.isLinked(bob.identity.agentId)).toBe(true);
  });
});

describe('links: certificates of a device without the entity key', () => {
  it("the device holding the entity key renews its sibling's certificate; the sibling takes it from a hello", async () => {
    const clock = { now: Date.now() + 60_000 };
    const home = await agent('alice', { clock: () => clock.now });
    // Its certificate is valid for a day only, so its renewal is due at once.
    const laptop = await startSibling(home, 'alice-laptop', {
      withoutEntityKey: true,
      link: { clock: () => clock.now },
    });
    running.push(laptop);
    expect(laptop.identity.entityKey).toBeUndefined();
    const first = Date.parse(laptop.identity.certificate.body.notAfter);
    await laptop.links.checkCertificates(); // it cannot renew it itself, and does not try
    expect(Date.parse(laptop.identity.certificate.body.notAfter)).toBe(first);
    await home.trust.addAgentCertificate(laptop.identity.certificate);
    await laptop.links.trust(home.identity.fingerprint, { addresses: [home.address()] });
    await eventually(() => home.links.isLinked(laptop.identity.agentId), 'the siblings link');
    await home.links.checkCertificates();
    expect(home.trust.agent(laptop.identity.agentId)!.notAfter).toBeGreaterThan(first + 300 * DAY);
    await eventually(
      () => (laptop.trust.agent(laptop.identity.agentId)?.notAfter ?? 0) > first,
      "the laptop's trust store holds its renewed certificate",
    );
    await laptop.links.checkCertificates();
    expect(Date.parse(laptop.identity.certificate.body.notAfter)).toBeGreaterThan(first + 300 * DAY);
    // Past the first certificate's end the laptop is still home's trusted sibling.
    clock.now += 2 * DAY;
    await home.links.checkCertificates();
    expect(home.trust.isTrustedAgent(laptop.identity.agentId)).toBe(true);
  });
});

describe('links: provisional outbound connections', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  it('a dial of an address without a peer id lets in only a connection to that address', async () => {
    const bob = await agent('bob');
    // An address that accepts TCP and never answers: the dial stays in flight.
    const sockets: Socket[] = [];
    const silent: Server = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    closers.push(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise((r) => silent.close(() => r()));
    });
    const stranger: KithLibp2p = await createNode({
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      announce: [],
      gater: {},
      maxConnections: 10,
    });
    await stranger.start();
    closers.push(async () => void (await stranger.stop()));

    const port = (silent.address() as { port: number }).port;
    const connected = new Promise<void>((r) => silent.once('connection', () => r()));
    const inFlight = bob.links.dial(`/ip4/127.0.0.1/tcp/${port}`).catch(() => undefined);
    // The dial is in flight once its TCP connection reached the silent server.
    await connected;
    // Meanwhile something else on bob's node dials a stranger: not provisional, refused.
    await expect(bob.links.libp2p.dial(stranger.getMultiaddrs()[0])).rejects.toThrow();
    expect(bob.links.libp2p.getConnections(stranger.peerId)).toHaveLength(0);
    await inFlight;
  });
});

import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { isKithError } from '../../common/errors.ts';
import { createNode, type KithLibp2p } from '../../agent/links/node.ts';
import type { EntityRecord } from '../../agent/trust/index.ts';
import {
  eventually,
  removeTempDirs,
  sleep,
  startAgent,
  type LinkOptions,
  type TestAgent,
} from './helpers.ts';

const running: TestAgent[] = [];
async function agent(name: string, options: LinkOptions = {}): Promise<TestAgent> {
  const a = await startAgent(name, {}, options);
  running.push(a);
  return a;
}

const raw: KithLibp2p[] = [];
/** A bare libp2p peer that lets everything through its own gater: a stranger probing us. */
async function rawPeer(): Promise<KithLibp2p> {
  const node = await createNode({
    privateKey: await generateKeyPair('Ed25519'),
    listen: [],
    announce: [],
    gater: {},
    maxConnections: 10,
  });
  await node.start();
  raw.push(node);
  return node;
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
  await Promise.all(raw.splice(0).map((n) => n.stop()));
});
afterAll(removeTempDirs);

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (isKithError(err)) return err.code;
    throw err;
  }
  throw new Error('expected a KithError');
}

describe('links: admission and invitations (loopback TCP)', () => {
  it("an unknown peer's streams never reach a protocol handler; its hello is refused and it is cut off", async () => {
    const alice = await agent('alice', { provisionalMs: 500 });
    const stranger = await rawPeer();
    let reached = 0;
    // A raw handler behind no guard of its own: only the links' admission stands before it.
    await alice.links.libp2p.handle('/probe/1', (stream) => {
      reached++;
      stream.abort(new Error('probe'));
    });
    let frames = 0;
    alice.links.transport.onFrame(() => void frames++);
    // A stranger may be a trusted entity's new agent, so it gets in provisionally: it may show
    // its certificate (hello) and nothing else, and is cut off when that does not admit it.
    const connection = await stranger.dial(alice.links.multiaddrs()[0]);
    for (const protocol of ['/probe/1', '/kith/frames/1', '/kith/invite/1', '/ipfs/id/1.0.0']) {
      const stream = await connection
        ?.newStream(protocol, { signal: AbortSignal.timeout(1_000) })
        .catch(() => undefined);
      try {
        stream?.send(Buffer.from([0, 0, 0, 1, 0]));
      } catch {
        // aborted by alice already
      }
    }
    // A hello stream that never says anything keeps it no longer than the provisional deadline.
    expect(alice.links.libp2p.getConnections(stranger.peerId)).toHaveLength(1);
    await connection
      ?.newStream('/kith/hello/1', { signal: AbortSignal.timeout(1_000) })
      .catch(() => undefined);
    await eventually(
      () => alice.links.libp2p.getConnections(stranger.peerId).length === 0,
      'the silent stranger is cut off at the deadline',
    );
    expect(reached).toBe(0);
    expect(frames).toBe(0);
    // Its hello shows a certificate of an entity alice does not trust: refused and cut off at once.
    const mallory = await agent('mallory');
    expect(await codeOf(mallory.links.dial(alice.address()))).toBe('ERR_NOT_TRUSTED');
    await eventually(
      () => alice.links.libp2p.getConnections(mallory.links.libp2p.peerId).length === 0,
      'the refused stranger is cut off',
    );
    expect(alice.links.transport.neighbours()).toEqual([]);
    expect(alice.links.contacts()).toEqual([]);
    expect(reached).toBe(0);
  });

  it('unknown peers past the per-address limit are refused by the gater', async () => {
    const alice = await agent('alice', {
      provisionalLimits: { maxOpen: 32, perAddress: 2, windowMs: 60_000 },
      // No deadline within the test: the first two stay provisionally connected however slow it runs.
      provisionalMs: 3_600_000,
    });
    const strangers = [await rawPeer(), await rawPeer(), await rawPeer()];
    for (const s of strangers) await s.dial(alice.links.multiaddrs()[0]).catch(() => undefined);
    // The third's dial resolved (the refusal comes right after the Noise handshake): wait for it.
    await eventually(
      () => alice.links.libp2p.getConnections(strangers[2].peerId).length === 0,
      'the third stranger is refused',
    );
    const connected = strangers.map((s) => alice.links.libp2p.getConnections(s.peerId).length);
    expect(connected).toEqual([1, 1, 0]);
  });

  it('an invitation makes both sides trusted contacts and frames flow both ways', async () => {
    const alice = await agent('alice');
    const bob = await agent('bob');
    const redeemed: EntityRecord[] = [];
    alice.links.onInvitationRedeemed((e) => redeemed.push(e));
    const code = alice.links.createInvitation({ ttlMs: 60_000 });
    expect(code).toMatch(/^kith1[A-Za-z0-9_-]+$/);
    expect(code.length).toBeLessThan(200);

    const inviter = await bob.links.acceptInvitation(code);
    expect(inviter.email).toBe('alice@example.org');
    expect(inviter.fingerprint).toBe(alice.identity.fingerprint);
    expect(redeemed.map((e) => [e.email, e.fingerprint])).toEqual([
      ['bob@example.org', bob.identity.fingerprint],
    ]);

    await eventually(() => alice.links.isLinked(bob.identity.agentId), 'alice sees the link');
    expect(bob.links.isLinked(alice.identity.agentId)).toBe(true);
    const [bobSeen] = alice.links.contacts();
    expect(bobSeen).toMatchObject({
      email: 'bob@example.org',
      trusted: true,
      contact: true,
      source: 'invitation',
    });
    expect(bobSeen.agents).toEqual([
      expect.objectContaining({ agentId: bob.identity.agentId, linked: true }),
    ]);
    expect(bob.links.contacts()[0]).toMatchObject({
      email: 'alice@example.org',
      trusted: true,
      contact: true,
    });

    const toBob: string[] = [];
    const toAlice: string[] = [];
    bob.links.transport.onFrame((from, frame) => {
      expect(from).toBe(alice.identity.agentId);
      toBob.push(Buffer.from(frame).toString());
    });
    alice.links.transport.onFrame((from, frame) => {
      expect(from).toBe(bob.identity.agentId);
      toAlice.push(Buffer.from(frame).toString());
    });
    await alice.links.transport.send(bob.identity.agentId, Buffer.from('hello bob'));
    await bob.links.transport.send(alice.identity.agentId, Buffer.from('hello alice'));
    await eventually(() => toBob.length === 1 && toAlice.length === 1, 'frames arrive');
    expect(toBob).toEqual(['hello bob']);
    expect(toAlice).toEqual(['hello alice']);
  });

  it('the inviter may use the link the moment it answered: its first frame is not refused while the invitee still checks the reply', async () => {
    const alice = await agent('alice');
    const bob = await agent('bob');
    const toBob: string[] = [];
    bob.links.transport.onFrame((_from, frame) => void toBob.push(Buffer.from(frame).toString()));
    let sent: Promise<void> | undefined;
    // As a list greets a new member or a node announces its addresses: at once, from the listener.
    alice.links.onInvitationRedeemed(() => {
      sent = alice.links.transport.send(bob.identity.agentId, Buffer.from('welcome'));
    });
    await bob.links.acceptInvitation(alice.links.createInvitation({ ttlMs: 60_000 }));
    await sent;
    await eventually(() => toBob.length === 1, 'the inviter’s first frame at the invitee');
    expect(toBob).toEqual(['welcome']);
  });

  it('an invitee’s own provisional deadline does not cut off its redemption (a loaded machine takes its time)', async () => {
    const alice = await agent('alice');
    // The deadline runs out long before the exchange can be done; the redemption decides instead.
    const bob = await agent('bob', { provisionalMs: 1 });
    const inviter = await bob.links.acceptInvitation(alice.links.createInvitation({ ttlMs: 60_000 }));
    expect(inviter.fingerprint).toBe(alice.identity.fingerprint);
    await eventually(() => alice.links.isLinked(bob.identity.agentId), 'alice sees the link');
    expect(bob.links.isLinked(alice.identity.agentId)).toBe(true);
  });

  it('the code’s addresses stay with the invitee as the way back: a link lost before any address record is redialled', async () => {
    const alice = await agent('alice');
    const bob = await agent('bob');
    await bob.links.acceptInvitation(alice.links.createInvitation({ ttlMs: 60_000 }));
    expect(bob.trust.addressHints(alice.identity.fingerprint)).toEqual(
      expect.arrayContaining([alice.address().replace(/\/p2p\/[^/]+$/, '')]),
    );
    await bob.links.libp2p.hangUp(alice.links.libp2p.peerId);
    await eventually(() => !bob.links.isLinked(alice.identity.agentId), 'the link down');
    expect(await bob.links.dialHints(alice.identity.fingerprint)).toBe(alice.identity.agentId);
    expect(bob.links.isLinked(alice.identity.agentId)).toBe(true);
  });

  it('a code works once', async () => {
    const alice = await agent('alice');
    const bob = await agent('bob');
    const carol = await agent('carol');
    const code = alice.links.createInvitation({ ttlMs: 60_000 });
    alice.links.createInvitation({ ttlMs: 60_000 }); // another one stays open: carol gets to ask
    await bob.links.acceptInvitation(code);
    expect(await codeOf(carol.links.acceptInvitation(code))).toBe('ERR_INVITATION_USED');
    expect(alice.links.contacts().map((c) => c.email)).toEqual(['bob@example.org']);
    expect(carol.links.contacts()).toEqual([]);
  });

  it('an expired code is refused', async () => {
    const alice = await agent('alice');
    const bob = await agent('bob');
    const code = alice.links.createInvitation({ ttlMs: 1 });
    await sleep(10);
    // No invitation is open any more, so the gater refuses bob outright.
    expect(await codeOf(bob.links.acceptInvitation(code))).toBe('ERR_INVITATION_REFUSED');
    expect(alice.links.contacts()).toEqual([]);
    expect(bob.links.contacts()).toEqual([]);
  });

  it('a mistyped code is a clear error', async () => {
    const bob = await agent('bob');
    expect(await codeOf(bob.links.acceptInvitation('kith1AAAA'))).toBe('ERR_INVITATION_MALFORMED');
  });
});

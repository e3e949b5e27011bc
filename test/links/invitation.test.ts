import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { isKithError } from '../../common/errors.ts';
import type { EntityRecord } from '../../agent/trust/index.ts';
import { eventually, removeTempDirs, sleep, startAgent, type TestAgent } from './helpers.ts';

const running: TestAgent[] = [];
async function agent(name: string): Promise<TestAgent> {
  const a = await startAgent(name);
  running.push(a);
  return a;
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
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
  it('refuses an unknown peer before any protocol handler runs', async () => {
    const alice = await agent('alice');
    const stranger = await agent('mallory');
    let reached = 0;
    // A raw handler behind no guard of ours: only the gater stands between it and the stranger.
    await alice.links.libp2p.handle('/probe/1', (stream) => {
      reached++;
      stream.abort(new Error('probe'));
    });
    const connection = await stranger.links.libp2p.dial(alice.links.multiaddrs()[0]).catch(() => undefined);
    for (const protocol of ['/probe/1', '/kith/hello/1', '/kith/frames/1', '/ipfs/id/1.0.0']) {
      await connection?.newStream(protocol, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
    }
    await sleep(400);
    expect(reached).toBe(0);
    expect(alice.links.libp2p.getConnections(stranger.links.libp2p.peerId)).toHaveLength(0);
    expect(alice.links.transport.neighbours()).toEqual([]);
    expect(alice.links.contacts()).toEqual([]);
    expect(await codeOf(stranger.links.dial(alice.address()))).toMatch(/^ERR_/);
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

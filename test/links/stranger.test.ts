// A stranger's provisional connection ends when its hello is refused, not at the deadline.
// Every agent here has a provisional deadline far beyond the Jest timeout: if a refused hello did
// not close the connection by itself, the awaited close event would never come and the test fails.
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Connection, PeerId } from '@libp2p/interface';
import { isKithError } from '../../common/errors.ts';
import type { AgentId } from '../../common/ids.ts';
import { createNode, type KithLibp2p } from '../../agent/links/node.ts';
import { encodeFrame } from '../../agent/links/frames.ts';
import { HELLO_PROTOCOL } from '../../agent/links/hello.ts';
import type { ProvisionalEnd } from '../../agent/trust/decisions.ts';
import { removeTempDirs, startAgent, type TestAgent } from './helpers.ts';

/** Far past the Jest timeout: only a refused hello can end a connection within a test. */
const NEVER_MS = 3_600_000;

const running: TestAgent[] = [];
const raw: KithLibp2p[] = [];

async function agent(name: string): Promise<TestAgent> {
  const a = await startAgent(name, {}, { provisionalMs: NEVER_MS });
  running.push(a);
  return a;
}

/** A bare libp2p peer that lets everything through its own gater. */
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

/**
 * What an agent saw of one remote peer: how its provisional admission ended, and the moment its
 * last connection closed. Registered before the peer dials, so no event can be missed.
 */
function watch(
  target: TestAgent,
  peer: () => PeerId,
): { end: Promise<ProvisionalEnd>; closed: Promise<void>; frames: () => number } {
  let frames = 0;
  const end = new Promise<ProvisionalEnd>((resolve) =>
    target.links.onProvisionalEnd((p, why) => p === peer().toString() && resolve(why)),
  );
  const closed = new Promise<void>((resolve) => {
    const onClose = (event: CustomEvent<Connection>): void => {
      if (!event.detail.remotePeer.equals(peer())) return;
      if (target.links.libp2p.getConnections(peer()).some((c) => c.status === 'open')) return;
      target.links.libp2p.removeEventListener('connection:close', onClose);
      resolve();
    };
    target.links.libp2p.addEventListener('connection:close', onClose);
  });
  target.links.transport.onFrame(() => void frames++);
  return { end, closed, frames: () => frames };
}

/** A protocol handler behind no guard of its own: only the links' admission stands before it. */
async function probeHandler(target: TestAgent): Promise<() => number> {
  let reached = 0;
  await target.links.libp2p.handle('/probe/1', (stream) => {
    reached++;
    stream.abort(new Error('probe'));
  });
  return () => reached;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (isKithError(err)) return err.code;
    throw err;
  }
  throw new Error('expected a KithError');
}

describe('links: a stranger refused at its hello is cut off at once', () => {
  it('an agent of an untrusted entity: its hello is refused, the connection closes, no handler ran', async () => {
    const alice = await agent('alice');
    const mallory = await agent('mallory');
    const reached = await probeHandler(alice);
    const seen = watch(alice, () => mallory.links.libp2p.peerId);
    expect(await codeOf(mallory.links.dial(alice.address()))).toBe('ERR_NOT_TRUSTED');
    expect(await seen.end).toBe('refused');
    await seen.closed;
    expect(alice.links.libp2p.getConnections(mallory.links.libp2p.peerId)).toEqual([]);
    expect(reached()).toBe(0);
    expect(seen.frames()).toBe(0);
    expect(alice.links.transport.neighbours()).toEqual([]);
    expect(alice.links.contacts()).toEqual([]);
    // Nothing of mallory was learned from the refused hello.
    expect(alice.trust.agent(mallory.identity.agentId as AgentId)).toBeUndefined();
  });

  it("a stranger showing a trusted agent's certificate as its own is refused and cut off", async () => {
    const alice = await agent('alice');
    const bob = await agent('bob');
    await bob.links.acceptInvitation(alice.links.createInvitation({ ttlMs: 60_000 }));
    const stranger = await rawPeer();
    const reached = await probeHandler(alice);
    const seen = watch(alice, () => stranger.peerId);
    const connection = await stranger.dial(alice.links.multiaddrs()[0]);
    // Streams it has no right to are refused (and do not end the connection by themselves).
    const probe = await connection
      .newStream('/probe/1', { signal: AbortSignal.timeout(5_000) })
      .catch(() => undefined);
    probe?.abort(new Error('done probing'));
    const hello = await connection.newStream(HELLO_PROTOCOL, { signal: AbortSignal.timeout(5_000) });
    const replay = {
      v: 1,
      entityKey: bob.identity.entityPublicArmored,
      certificate: {
        canonical: bob.identity.certificate.canonical,
        signature: bob.identity.certificate.signature,
      },
      siblings: [],
      revocations: [],
    };
    hello.send(encodeFrame(Buffer.from(JSON.stringify(replay))));
    const answer = await readOne(hello);
    expect(JSON.parse(answer)).toEqual({ v: 1, refused: 'ERR_CERT_WRONG_AGENT' });
    expect(await seen.end).toBe('refused');
    await seen.closed;
    expect(reached()).toBe(0);
    expect(alice.links.isLinked(stranger.peerId.toString() as AgentId)).toBe(false);
    // Bob himself is untouched.
    expect(alice.links.isLinked(bob.identity.agentId)).toBe(true);
  });

  it('a malformed hello is refused and cut off too', async () => {
    const alice = await agent('alice');
    const stranger = await rawPeer();
    const seen = watch(alice, () => stranger.peerId);
    const connection = await stranger.dial(alice.links.multiaddrs()[0]);
    const hello = await connection.newStream(HELLO_PROTOCOL, { signal: AbortSignal.timeout(5_000) });
    hello.send(encodeFrame(Buffer.from('this is not a hello')));
    expect(JSON.parse(await readOne(hello))).toEqual({ v: 1, refused: 'ERR_PROTOCOL' });
    expect(await seen.end).toBe('refused');
    await seen.closed;
  });
});

/** The first frame of a stream, as text (the refusal is one short frame). */
async function readOne(stream: AsyncIterable<{ subarray(): Uint8Array }>): Promise<string> {
  let buffered = Buffer.alloc(0);
  for await (const chunk of stream) {
    buffered = Buffer.concat([buffered, chunk.subarray()]);
    if (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32BE(0)) break;
  }
  return buffered.subarray(4, 4 + buffered.readUInt32BE(0)).toString();
}

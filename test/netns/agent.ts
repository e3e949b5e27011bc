// One Kith agent in a child process, driven by a test over stdin/stdout JSON lines:
//   stdin  {"id":1,"cmd":"info","args":{}}
//   stdout {"id":1,"ok":true,"result":{...}}   or {"id":1,"ok":false,"code":"ERR_...","error":"..."}
// Started as: ip netns exec NS node --import tsx --import ./common/polyfill.ts test/netns/agent.ts '<options json>'
// Debugging ICE: NETNS_RTC_LOG=1 (or =v for verbose) in the test's environment logs libdatachannel/libjuice to stderr.
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { CircuitRelayService } from '@libp2p/circuit-relay-v2';
import { peerIdFromString } from '@libp2p/peer-id';
import { defaultConfig } from '../../config/defaults.ts';
import type { Config } from '../../config/schema.ts';
import { asAgentId, asFingerprint, type AgentId } from '../../common/ids.ts';
import { createLogger } from '../../common/logger.ts';
import { openDatabase } from '../../store/db.ts';
import { createIdentity, hasIdentity, loadIdentity } from '../../agent/identity/identity.ts';
import { createLinks } from '../../agent/links/index.ts';
import { createTrustStore } from '../../agent/trust/index.ts';
import { createNat, isRelayed, natExtras } from '../../agent/nat/index.ts';
import { createReachability } from '../../agent/reachability/index.ts';
import { buildBindingRequest, parseBindingResponse } from '../../agent/nat/stun-codec.ts';

/** How the test configures this agent. */
export interface AgentOptions {
  name: string;
  /** Kept across restarts: same keys, same trust. */
  dataDir: string;
  p2p: Partial<Config['p2p']>;
  /** pino level for this agent's stderr (default info, or NETNS_LOG_LEVEL). */
  logLevel?: string;
  /** A fixed STUN list for ICE; by default each relay's, on the port it tells (IceServers). */
  stunServers?: string[];
  /** Upgrade relayed links to WebRTC on its own, as a node does (default true); false: the test calls upgrade. */
  autoUpgrade?: boolean;
  /** The links' provisional deadline (default the link manager's own). */
  provisionalMs?: number;
}

const options = JSON.parse(process.argv[2]) as AgentOptions;
if (process.env.NETNS_RTC_LOG) {
  const { initLogger } = await import('node-datachannel');
  initLogger((process.env.NETNS_RTC_LOG === 'v' ? 'Verbose' : 'Debug') as 'Debug', (level, message) =>
    process.stderr.write(`rtc ${level} ${message}\n`),
  );
}
const log = createLogger({
  level: options.logLevel ?? process.env.NETNS_LOG_LEVEL ?? 'info',
  name: options.name,
  destination: 2,
});
mkdirSync(options.dataDir, { recursive: true });
const db = openDatabase(join(options.dataDir, 'kith.db'));
const passphrase = 'netns test passphrase';
const identity = hasIdentity(db)
  ? await loadIdentity(db, passphrase)
  : await createIdentity(db, { name: options.name, email: `${options.name}@example.org`, passphrase });
const trust = createTrustStore({ db, log });
const p2p: Config['p2p'] = { ...defaultConfig().p2p, ...options.p2p };
const extras = natExtras(p2p, { stunServers: options.stunServers });
const links = createLinks({
  identity,
  trust,
  config: p2p,
  log,
  extras,
  provisionalMs: options.provisionalMs,
});
// How each provisional admission ended, per peer; and a wake-up for every waiter on events.
const provisionalEnds = new Map<string, string[]>();
const wakeups = new Set<() => void>();
const wake = (): void => {
  for (const w of [...wakeups]) w();
};
links.onProvisionalEnd((peer, end) => {
  provisionalEnds.set(peer, [...(provisionalEnds.get(peer) ?? []), end]);
  wake();
});
await links.start();
links.libp2p.addEventListener('connection:close', wake);
links.libp2p.addEventListener('connection:open', wake);
// Signed address records to and from neighbours, "where is X?" (agent/reachability), as in a node.
const reachability = createReachability({ links, trust, identity, db, config: p2p, log });
await reachability.start();
const node = links.libp2p;
const isTrusted = (peer: string): boolean => trust.isTrustedAgent(peer as AgentId);
const nat = createNat({
  config: p2p,
  node,
  isTrusted,
  log,
  autoUpgrade: options.autoUpgrade ?? true,
  onLinkChange: (handler) => links.transport.onLinkChange(handler),
  ice: extras.ice,
});

// Frames "ping:X" are answered with "pong:X"; waiters resolve on the pong.
const waiters = new Map<string, () => void>();
links.transport.onFrame(async (from, frame) => {
  const text = Buffer.from(frame).toString();
  if (text.startsWith('ping:')) await links.transport.send(from, Buffer.from(`pong:${text.slice(5)}`));
  else if (text.startsWith('pong:')) waiters.get(`${from} ${text.slice(5)}`)?.();
});

function connectionsTo(peer?: string) {
  const conns = peer === undefined ? node.getConnections() : node.getConnections(peerIdFromString(peer));
  return conns
    .filter((c) => c.status === 'open')
    .map((c) => ({
      peer: c.remotePeer.toString(),
      address: c.remoteAddr.toString(),
      relayed: isRelayed(c),
      webrtc: c.remoteAddr.getComponents().some((x) => x.name === 'webrtc'),
    }));
}

async function waitFor(check: () => boolean, what: string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return Date.now() - started;
}

/** Resolves once `check` holds, looking again after every event that can change it (no timeout of its own). */
function whenEvent(check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const look = (): void => {
      if (!check()) return;
      wakeups.delete(look);
      resolve();
    };
    wakeups.add(look);
    look();
  });
}

type Args = Record<string, unknown>;
const commands: Record<string, (args: Args) => Promise<unknown> | unknown> = {
  info: () => ({
    agentId: identity.agentId,
    fingerprint: identity.fingerprint,
    addresses: links.multiaddrs().map(String),
  }),
  invite: () => links.createInvitation({ ttlMs: 60_000 }),
  /** What another agent needs to trust us without an invitation (a fingerprint checked out of band). */
  credentials: () => ({
    publicKey: identity.entityPublic.armor(),
    certificate: { canonical: identity.certificate.canonical, signature: identity.certificate.signature },
  }),
  /** Trusts another entity and its agent one-way, as `kith trust` after the key arrived. */
  trustOneWay: async ({ publicKey, certificate }) => {
    await trust.addEntity(String(publicKey), { trusted: true, contact: true, source: 'fingerprint' });
    const agent = await trust.addAgentCertificate(certificate as { canonical: string; signature: string });
    return trust.isTrustedAgent(agent.agentId);
  },
  accept: async ({ code }) => (await links.acceptInvitation(String(code))).email,
  startNat: () => nat.start(),
  /** Stops the NAT layer (reservation retries among it): nothing dials a relay on its own after this. */
  stopNat: () => nat.stop(),
  /** Resolves once the reservation supervisor counted this many failed attempts in a row. */
  waitReservationFailures: ({ count, timeoutMs }) =>
    waitFor(
      () => (nat.reservations?.status() ?? []).some((r) => r.failures >= Number(count ?? 1)),
      'a failed relay reservation',
      Number(timeoutMs ?? 60_000),
    ),
  /** How each provisional admission of this peer ended so far ('refused', 'deadline', ...). */
  provisionalEnds: ({ peer }) => provisionalEnds.get(String(peer)) ?? [],
  /** Resolves with the ends once at least one provisional admission of this peer ended. */
  waitProvisionalEnd: async ({ peer }) => {
    await whenEvent(() => (provisionalEnds.get(String(peer)) ?? []).length > 0);
    return provisionalEnds.get(String(peer));
  },
  /** Resolves once no open connection to this peer is left (on close events). */
  waitNoConnection: ({ peer }) => whenEvent(() => connectionsTo(String(peer)).length === 0),
  reservations: () => nat.reservations?.status() ?? [],
  waitReserved: ({ timeoutMs }) =>
    waitFor(
      () => nat.reservations?.allReserved() ?? false,
      'a relay reservation',
      Number(timeoutMs ?? 60_000),
    ),
  dial: ({ address }) => links.dial(String(address)),
  linked: ({ peer }) => links.isLinked(asAgentId(String(peer))),
  waitLinked: ({ peer, timeoutMs }) =>
    waitFor(
      () => links.isLinked(asAgentId(String(peer))),
      `a link to ${String(peer)}`,
      Number(timeoutMs ?? 60_000),
    ),
  waitDirect: ({ peer, timeoutMs }) =>
    waitFor(
      () => {
        const conns = connectionsTo(String(peer));
        return conns.some((c) => c.webrtc) && !conns.some((c) => c.relayed);
      },
      `a direct WebRTC connection to ${String(peer)} and no relayed one`,
      Number(timeoutMs ?? 60_000),
    ),
  connections: ({ peer }) => connectionsTo(peer === undefined ? undefined : String(peer)),
  hangUp: async ({ peer }) => node.hangUp(peerIdFromString(String(peer))),
  upgrade: async ({ peer }) => {
    const connection = await nat.direct.upgrade(peerIdFromString(String(peer)));
    return connection?.remoteAddr.toString() ?? null;
  },
  roundtrip: async ({ to, text, timeoutMs }) => {
    const peer = asAgentId(String(to));
    const started = Date.now();
    const pong = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no pong from ${peer}`)), Number(timeoutMs ?? 60_000));
      waiters.set(`${peer} ${String(text)}`, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    try {
      await links.transport.send(peer, Buffer.from(`ping:${String(text)}`));
      await pong;
    } finally {
      waiters.delete(`${peer} ${String(text)}`);
    }
    return Date.now() - started;
  },
  /** Links with some agent of an entity through the reachability module (cache, then neighbours). */
  reach: ({ fingerprint }) => reachability.reach(asFingerprint(String(fingerprint))),
  neighbours: () => links.transport.neighbours(),
  /** Relay side: who holds a reservation with us, reserved from which address. */
  relayReservations: () => {
    const server = (node.services as { relay?: CircuitRelayService }).relay;
    return [...(server?.reservations.entries() ?? [])].map(([peer, r]) => ({
      peer: peer.toString(),
      addr: r.addr.toString(),
      expiry: r.expiry.getTime(),
    }));
  },
  /** The addresses we hold for an agent, not set aside. */
  addresses: ({ agent }) => reachability.addressesOf(asAgentId(String(agent))),
  /** Sets aside every address we hold for an agent: a contact whose addresses all proved wrong. */
  forgetAddresses: ({ agent }) => {
    const id = asAgentId(String(agent));
    for (const address of reachability.addressesOf(id)) reachability.markFailed(id, address);
  },
  /** The seq (signing time) of the record we hold for an agent. */
  heldSeq: ({ agent }) =>
    (
      db.prepare('SELECT seq FROM reach_record WHERE agent = ?').get(String(agent)) as
        { seq: number } | undefined
    )?.seq ?? null,
  stunCounts: () => nat.stun?.counts ?? null,
  /** Resolves once the STUN server ignored at least one request (a stranger's). */
  waitStunIgnored: ({ timeoutMs }) =>
    waitFor(
      () => (nat.stun?.counts.ignored ?? 0) > 0,
      'an ignored STUN request',
      Number(timeoutMs ?? 60_000),
    ),
  /** The STUN servers ICE would use now (learned from the relays). */
  iceServers: () => extras.ice.urls(),
  waitIceServers: ({ timeoutMs }) =>
    waitFor(() => extras.ice.urls().length > 0, 'a STUN server for ICE', Number(timeoutMs ?? 60_000)),
  stunProbe: ({ host, port, timeoutMs }) => stunProbe(String(host), Number(port), Number(timeoutMs ?? 1_000)),
  stop: async () => {
    await reachability.stop();
    await nat.stop();
    await links.stop();
    db.close();
    setImmediate(() => process.exit(0));
  },
};

/** Asks a STUN server what address it sees us at; null when no answer comes. */
async function stunProbe(host: string, port: number, timeoutMs: number): Promise<string | null> {
  const socket = createSocket('udp4');
  const transactionId = randomBytes(12);
  try {
    return await new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      socket.on('message', (packet) => {
        const answer = parseBindingResponse(packet);
        if (answer?.transactionId.equals(transactionId)) {
          clearTimeout(timer);
          resolve(`${answer.address}:${answer.port}`);
        }
      });
      socket.send(buildBindingRequest(transactionId), port, host);
    });
  } finally {
    socket.close();
  }
}

function reply(message: object): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  let request: { id: number; cmd: string; args?: Args };
  try {
    request = JSON.parse(line) as typeof request;
  } catch {
    return;
  }
  const command = commands[request.cmd];
  Promise.resolve()
    .then(() => {
      if (command === undefined) throw new Error(`unknown command ${request.cmd}`);
      return command(request.args ?? {});
    })
    .then(
      (result) => reply({ id: request.id, ok: true, result: result ?? null }),
      (err: Error & { code?: string }) =>
        reply({ id: request.id, ok: false, code: err.code, error: err.message }),
    );
});
// The test went away: do not linger in the namespace.
process.stdin.on('end', () => process.exit(0));
reply({ event: 'ready', agentId: identity.agentId });

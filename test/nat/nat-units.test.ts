import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, test } from '@jest/globals';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import { defaultConfig } from '../../config/defaults.ts';
import type { Config } from '../../config/schema.ts';
import { silentLogger } from '../../common/logger.ts';
import { createNode, type KithLibp2p } from '../../agent/links/node.ts';
import {
  createNat,
  DEFAULT_STUN_PORT,
  DirectUpgrader,
  IceServers,
  natExtras,
  relayCircuitAddress,
  relayServerInit,
  retryDelay,
  shouldUpgrade,
  staleConnections,
  StunResponder,
  stunServersFor,
  trustedSourceIps,
  webrtcAddressFor,
} from '../../agent/nat/index.ts';
import {
  buildBindingRequest,
  buildBindingResponse,
  parseBindingRequest,
  parseBindingResponse,
} from '../../agent/nat/stun-codec.ts';

const RELAY = '12D3KooWNoPxxUCFazTosikgxGnwBNMhQkjpJTSSGCAVUxXjuTev';
const PEER = '12D3KooWBhNtfVEWdqWUnodtTTmCQoqQAVvnmiH8pdcTYZqFTSEX';

function p2p(overrides: Partial<Config['p2p']> = {}): Config['p2p'] {
  return { ...defaultConfig().p2p, listen: ['/ip4/127.0.0.1/tcp/0'], ...overrides };
}

describe('STUN codec (RFC 5389)', () => {
  test('a binding response carries the XOR-mapped address and a valid fingerprint', () => {
    const id = randomBytes(12);
    const response = buildBindingResponse(id, '45.10.0.2', 51484);
    expect(parseBindingResponse(response)).toEqual({ transactionId: id, address: '45.10.0.2', port: 51484 });
    // The address is XORed on the wire, never in the clear.
    expect(response.includes(Buffer.from([45, 10, 0, 2]))).toBe(false);
    expect(response.length % 4).toBe(0);
    const v6 = parseBindingResponse(buildBindingResponse(id, '2001:db8::7', 443));
    expect(v6?.address).toBe('2001:db8:0:0:0:0:0:7');
  });

  test('only well-formed binding requests are recognised', () => {
    const id = randomBytes(12);
    expect(parseBindingRequest(buildBindingRequest(id))?.transactionId).toEqual(id);
    expect(parseBindingRequest(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toBeUndefined();
    const noCookie = buildBindingRequest(id);
    noCookie.writeUInt32BE(0, 4);
    expect(parseBindingRequest(noCookie)).toBeUndefined();
    const wrongLength = Buffer.concat([buildBindingRequest(id), Buffer.alloc(3)]);
    expect(parseBindingRequest(wrongLength)).toBeUndefined();
    // A response is not a request: no reflection loops between two responders.
    expect(parseBindingRequest(buildBindingResponse(id, '1.2.3.4', 1))).toBeUndefined();
  });
});

describe('STUN responder over real UDP', () => {
  let responder: StunResponder | undefined;
  afterEach(async () => {
    await responder?.stop();
  });

  async function ask(port: number): Promise<string | null> {
    const socket = createSocket('udp4');
    const id = randomBytes(12);
    try {
      return await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(null), 300);
        socket.on('message', (packet) => {
          clearTimeout(timer);
          const answer = parseBindingResponse(packet);
          resolve(answer ? `${answer.address}:${answer.port}` : 'garbled');
        });
        socket.send(buildBindingRequest(id), port, '127.0.0.1');
      });
    } finally {
      socket.close();
    }
  }

  test('answers allowed source IPs with their mapped address and ignores the rest', async () => {
    const allowed = new Set<string>();
    responder = new StunResponder({
      port: 0,
      host: '127.0.0.1',
      isAllowed: (ip) => allowed.has(ip),
      log: silentLogger(),
    });
    await responder.start();
    expect(await ask(responder.port())).toBeNull();
    allowed.add('127.0.0.1');
    expect(await ask(responder.port())).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(responder.counts).toEqual({ answered: 1, ignored: 1 });
  });

  test('a taken port fails with ERR_STUN_LISTEN', async () => {
    responder = new StunResponder({ port: 0, host: '127.0.0.1', isAllowed: () => true, log: silentLogger() });
    await responder.start();
    const second = new StunResponder({
      port: responder.port(),
      host: '127.0.0.1',
      isAllowed: () => true,
      log: silentLogger(),
    });
    await expect(second.start()).rejects.toMatchObject({ code: 'ERR_STUN_LISTEN' });
  });
});

describe('STUN configuration', () => {
  test('ICE uses each relay on the STUN port it told us, nothing before, never a guessed port', () => {
    const ice = new IceServers([
      `/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}`,
      `/dns4/r.example.org/tcp/1/p2p/${PEER}`,
    ]);
    expect(ice.isRelay(RELAY)).toBe(true);
    expect(ice.isRelay('12D3KooWSomeoneElse')).toBe(false);
    expect(ice.urls()).toEqual([]);
    ice.learn(RELAY, 3479);
    ice.learn(PEER, 0); // that relay answers no STUN
    expect(ice.urls()).toEqual(['stun:45.10.0.1:3479']);
    expect(new IceServers([], ['stun:10.0.0.1:1']).urls()).toEqual(['stun:10.0.0.1:1']);
  });

  test('a relay-enabled node answers STUN by default; other nodes do not', async () => {
    expect(defaultConfig().p2p.stunPort).toBe(DEFAULT_STUN_PORT);
    const node = { addEventListener: () => undefined } as never;
    const nat = (config: Config['p2p']) =>
      createNat({ config, node, isTrusted: () => true, log: silentLogger() });
    const relay = { enabled: true, maxReservations: 4, maxBytesPerConnection: 0 };
    expect(nat(p2p({ relay })).stun).toBeDefined();
    expect(nat(p2p({ relay, stunPort: 0 })).stun).toBeUndefined();
    expect(nat(p2p()).stun).toBeUndefined();
  });
});

describe('DirectUpgrader', () => {
  test('new streams take the direct connection while the relayed one is still closing', async () => {
    const { preferDirect } = await import('../../agent/links/transport.ts');
    const conn = (address: string, status = 'open') => ({ remoteAddr: multiaddr(address), status }) as never;
    const relayed = conn(`/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}/p2p-circuit/p2p/${PEER}`);
    const webrtc = conn(`/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}/p2p-circuit/webrtc/p2p/${PEER}`);
    expect(preferDirect([relayed, webrtc])).toBe(webrtc);
    expect(preferDirect([relayed])).toBe(relayed);
    expect(preferDirect([conn('/ip4/45.10.0.2/tcp/1', 'closed'), relayed])).toBe(relayed);
    expect(preferDirect([])).toBeUndefined();
  });

  test('a relayed connection dialed before the peer was trusted upgrades when the link comes up', async () => {
    const { peerIdFromString } = await import('@libp2p/peer-id');
    const peer = peerIdFromString(PEER);
    const relayed = {
      remotePeer: peer,
      remoteAddr: multiaddr(`/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}/p2p-circuit/p2p/${PEER}`),
      status: 'open',
      direction: 'outbound',
      close: async () => undefined,
    } as never;
    let listener: ((event: CustomEvent) => void) | undefined;
    const dialed: string[] = [];
    let trusted = false;
    const upgrader = new DirectUpgrader({
      node: {
        getConnections: () => [relayed],
        dial: async (address) => {
          dialed.push(address.toString());
          throw new Error('no ICE in a unit test');
        },
        addEventListener: (_type, l) => (listener = l as never),
        removeEventListener: () => undefined,
      },
      isTrusted: () => trusted,
      log: silentLogger(),
      settleMs: 0,
    });
    upgrader.start();
    // Opened during an invitation: not trusted yet, nothing happens.
    listener!(new CustomEvent('connection:open', { detail: relayed }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(dialed).toEqual([]);
    // The invitation made the link: now it upgrades, once.
    trusted = true;
    upgrader.linkUp(peer);
    upgrader.linkUp(peer);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(dialed).toEqual([`/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}/p2p-circuit/webrtc/p2p/${PEER}`]);
    await upgrader.stop();
    upgrader.linkUp(peer);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(dialed).toHaveLength(1);
  });
});

describe('NAT decisions', () => {
  test('STUN trust comes only from direct connections of trusted peers', async () => {
    const { peerIdFromString } = await import('@libp2p/peer-id');
    const conn = (peer: string, address: string, status = 'open') => ({
      remotePeer: peerIdFromString(peer),
      remoteAddr: multiaddr(address),
      status: status as 'open',
    });
    const ips = trustedSourceIps(
      [
        conn(PEER, '/ip4/45.10.0.2/tcp/51000'),
        conn(RELAY, '/ip4/45.10.0.9/tcp/4410'), // not trusted
        conn(PEER, `/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}/p2p-circuit`), // relayed: the relay's IP
        conn(PEER, `/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}/p2p-circuit/webrtc/p2p/${PEER}`),
        conn(PEER, '/ip4/45.10.0.7/tcp/1', 'closed'),
      ],
      (peer) => peer === PEER,
    );
    expect([...ips]).toEqual(['45.10.0.2']);
  });

  test('a peer seen from a new IP makes its connections from other IPs stale', () => {
    const c = (id: string, address: string, status = 'open') => ({
      id,
      remoteAddr: multiaddr(address),
      status: status as 'open',
    });
    const fresh = c('new', '/ip4/45.10.0.12/tcp/40000');
    const others = [
      fresh,
      c('old', '/ip4/45.10.0.2/tcp/39000'),
      c('same-ip', '/ip4/45.10.0.12/tcp/41000'),
      c('relayed', `/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}/p2p-circuit`),
      c('closed', '/ip4/45.10.0.3/tcp/1', 'closed'),
    ];
    expect(staleConnections(fresh, others)).toEqual(['old']);
    expect(staleConnections(c('r', `/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}/p2p-circuit`), others)).toEqual([]);
  });

  test('only the dialer of a relayed link to a trusted peer without a direct one upgrades', () => {
    const base = { relayed: true, outbound: true, trusted: true, hasDirect: false };
    expect(shouldUpgrade(base)).toBe(true);
    expect(shouldUpgrade({ ...base, outbound: false })).toBe(false);
    expect(shouldUpgrade({ ...base, trusted: false })).toBe(false);
    expect(shouldUpgrade({ ...base, hasDirect: true })).toBe(false);
    expect(shouldUpgrade({ ...base, relayed: false })).toBe(false);
  });

  test('WebRTC and circuit addresses are built from the relay address', () => {
    const relayed = multiaddr(`/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}/p2p-circuit/p2p/${PEER}`);
    expect(webrtcAddressFor(relayed, PEER).toString()).toBe(
      `/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}/p2p-circuit/webrtc/p2p/${PEER}`,
    );
    expect(relayCircuitAddress(`/dns4/relay.example.org/tcp/4410/p2p/${RELAY}`).toString()).toBe(
      `/dns4/relay.example.org/tcp/4410/p2p/${RELAY}/p2p-circuit`,
    );
    expect(() => relayCircuitAddress('/ip4/45.10.0.1/tcp/4410')).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_ADDRESS' }),
    );
  });

  test('STUN servers are the trusted relays only, never third-party defaults', () => {
    expect(
      stunServersFor([`/ip4/45.10.0.1/tcp/4410/p2p/${RELAY}`, `/dns4/r.example.org/tcp/1/p2p/${RELAY}`]),
    ).toEqual(['stun:45.10.0.1:3478', 'stun:r.example.org:3478']);
    expect(stunServersFor([])).toEqual([]);
  });

  test('reservation retries back off but stay within seconds', () => {
    expect([1, 2, 3, 4, 5, 10].map((n) => retryDelay(n, 250, 5_000))).toEqual([
      250, 500, 1000, 2000, 4000, 5000,
    ]);
  });

  test('the relay drops libp2p default limits and applies its own byte cap when configured', () => {
    const open = relayServerInit({ enabled: true, maxReservations: 7, maxBytesPerConnection: 0 });
    expect(open.reservations).toEqual({ maxReservations: 7, applyDefaultLimit: false });
    const capped = relayServerInit({ enabled: true, maxReservations: 7, maxBytesPerConnection: 1 << 30 });
    expect(capped.reservations?.applyDefaultLimit).toBe(true);
    expect(capped.reservations?.defaultDataLimit).toBe(BigInt(1 << 30));
    // No duration limit worth the name: far beyond the 2 minutes libp2p would impose.
    expect(capped.reservations?.defaultDurationLimit).toBeGreaterThan(24 * 86_400_000);
  });
});

describe('node wiring', () => {
  const nodes: KithLibp2p[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  async function build(config: Config['p2p']): Promise<KithLibp2p> {
    const node = await createNode({
      privateKey: await generateKeyPair('Ed25519'),
      listen: config.listen,
      announce: [],
      gater: {},
      maxConnections: 8,
      extras: natExtras(config),
    });
    nodes.push(node);
    return node;
  }

  test('UPnP port mapping is wired only when p2p.upnp is set', async () => {
    const services = (node: KithLibp2p) => node.services as Record<string, unknown>;
    expect(services(await build(p2p({ upnp: true }))).upnp).toBeDefined();
    expect(services(await build(p2p({ upnp: false }))).upnp).toBeUndefined();
  });

  test('the relay server runs only when p2p.relay.enabled is set', async () => {
    const services = (node: KithLibp2p) => node.services as Record<string, unknown>;
    const relay = await build(
      p2p({ relay: { enabled: true, maxReservations: 4, maxBytesPerConnection: 0 } }),
    );
    expect(services(relay).relay).toBeDefined();
    expect(services(await build(p2p())).relay).toBeUndefined();
  });

  test('a started node listens for WebRTC upgrades next to TCP', async () => {
    const node = await build(p2p());
    await node.start();
    expect(node.getProtocols()).toContain('/webrtc-signaling/0.0.1');
    expect(node.getMultiaddrs().some((a) => a.toString().includes('/tcp/'))).toBe(true);
  });
});

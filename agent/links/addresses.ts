import { lookup } from 'node:dns/promises';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { KithError } from '../../common/errors.ts';

/** The peer an address names: its last /p2p/, unless that is the relay of a circuit address. */
export function targetPeer(address: Multiaddr): string | undefined {
  const components = address.getComponents();
  const circuit = components.findIndex((c) => c.name === 'p2p-circuit');
  return components.slice(circuit + 1).findLast((c) => c.name === 'p2p')?.value;
}

/** The `ip:port` keys a dial of this address may reach (agent/links/gater.ts `outboundKey`). */
export async function dialKeys(address: Multiaddr): Promise<string[]> {
  const components = address.getComponents();
  const port = components.find((c) => c.name === 'tcp' || c.name === 'udp')?.value;
  const host = components[0];
  // A circuit address without a target, or some transport we do not parse: as before, any.
  if (port === undefined || components.some((c) => c.name === 'p2p-circuit')) return ['*'];
  if (host.name === 'ip4' || host.name === 'ip6') return [`${host.value}:${port}`];
  if (host.name === 'dns4' || host.name === 'dns6' || host.name === 'dns') {
    const family = host.name === 'dns4' ? 4 : host.name === 'dns6' ? 6 : 0;
    // The name itself (a transport may connect to it as it is), and what it resolves to now.
    const found = await lookup(host.value ?? '', { all: true, family }).catch(() => []);
    return [`${host.value}:${port}`, ...found.map((a) => `${a.address}:${port}`)];
  }
  return ['*'];
}

/** A multiaddr from user input, or ERR_BAD_ADDRESS with an example. */
export function parseAddress(text: string): Multiaddr {
  try {
    return multiaddr(text);
  } catch (err) {
    throw new KithError(
      'ERR_BAD_ADDRESS',
      `not a multiaddr: ${text} (${(err as Error).message})`,
      'e.g. /ip4/203.0.113.5/tcp/4410 or /dns4/home.example.org/tcp/4410',
    );
  }
}

/** The address without its trailing /p2p/ID. */
export function withoutPeer(address: Multiaddr): Multiaddr {
  // Only the trailing /p2p/ID: a relayed address names its relay with /p2p/ too.
  const all = address.getComponents();
  const components = all.filter((c, i) => !(c.name === 'p2p' && i === all.length - 1));
  return multiaddr(components.map((c) => `/${c.name}${c.value === undefined ? '' : `/${c.value}`}`).join(''));
}

/** The address ending in /p2p/`peer` (instead of whatever peer it named). */
export function withPeer(address: Multiaddr, peer: string): Multiaddr {
  return withoutPeer(address).encapsulate(`/p2p/${peer}`);
}

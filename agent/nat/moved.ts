import type { Connection } from '@libp2p/interface';

/** The remote IP of a direct connection, or undefined for relayed/WebRTC ones. */
function directIp(connection: Pick<Connection, 'remoteAddr'>): string | undefined {
  const components = connection.remoteAddr.getComponents();
  if (components.some((c) => c.name === 'p2p-circuit' || c.name === 'webrtc')) return undefined;
  const first = components[0];
  return first?.name === 'ip4' || first?.name === 'ip6' ? first.value : undefined;
}

/**
 * Older direct connections of the same peer from another IP than a fresh one. When a NATed
 * peer's public address changes, its NAT forgets the old mapping, but we only notice the old
 * connection is dead after a failed ping (~10 s); meanwhile the relay would pick it to reach the
 * peer and the relayed dial would time out. The peer just proved where it is now, so the
 * others are dead ends.
 */
export function staleConnections(
  fresh: Pick<Connection, 'id' | 'remoteAddr'>,
  others: readonly Pick<Connection, 'id' | 'remoteAddr' | 'status'>[],
): string[] {
  const ip = directIp(fresh);
  if (ip === undefined) return [];
  return others
    .filter((c) => c.id !== fresh.id && c.status === 'open')
    .filter((c) => {
      const other = directIp(c);
      return other !== undefined && other !== ip;
    })
    .map((c) => c.id);
}

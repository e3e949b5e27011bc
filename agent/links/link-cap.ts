/**
 * Which links to close when more than `max` are open: the least recently used first, never a
 * kept one (the link just opened, relay links a NATed agent depends on). Pure, so the policy is
 * testable without sockets.
 */
export function linksToClose(
  lastActivity: ReadonlyMap<string, number>,
  max: number,
  keep: (peer: string) => boolean,
): string[] {
  const excess = lastActivity.size - max;
  if (excess <= 0) return [];
  return [...lastActivity.entries()]
    .filter(([peer]) => !keep(peer))
    .sort((a, b) => a[1] - b[1])
    .slice(0, excess)
    .map(([peer]) => peer);
}

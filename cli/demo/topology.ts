// The demo network's shape, apart from the nodes, so `kith demo` checks its arguments without
// loading them.

const RELAY_NAMES = ['carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'];

/**
 * The demo's trust graph, as names. alice and bob never trust each other directly; every other
 * agent is a relay that both trust, so with N agents there are N-2 disjoint paths alice–X–bob
 * and alice's mail to bob is discovered and routed through one of them.
 */
export function demoTopology(agents: number): { names: string[]; links: [string, string][] } {
  if (agents < 3 || agents > 2 + RELAY_NAMES.length) {
    throw new RangeError(`the demo runs 3 to ${2 + RELAY_NAMES.length} agents`);
  }
  const relays = RELAY_NAMES.slice(0, agents - 2);
  const links: [string, string][] = [];
  for (const relay of relays) links.push(['alice', relay], [relay, 'bob']);
  return { names: ['alice', ...relays, 'bob'], links };
}

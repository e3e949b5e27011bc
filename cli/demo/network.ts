import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { KithNode } from '../../agent/node.ts';
import { createIdentity } from '../../agent/identity/identity.ts';
import { openRedis, type RedisHandle } from '../../agent/queue/connection.ts';
import type { Logger } from '../../common/logger.ts';
import { loadConfig } from '../../config/load.ts';
import type { GatewaySettings } from '../../gateway/index.ts';
import { openDatabase } from '../../store/db.ts';
import { prepareDataDir } from '../../store/datadir.ts';

/** One agent of the demo network. */
export interface DemoAgent {
  name: string;
  dataDir: string;
  node: KithNode;
  settings: GatewaySettings;
}

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

/**
 * Starts a whole network on loopback in this process: fresh data directories under `dir`, one
 * private redis-server shared by all (separate key prefixes), every port ephemeral, trust set
 * up by real invitations, and alice and bob made each other's contacts (keys exchanged as if
 * checked out of band) without trusting each other as neighbours.
 */
export async function startDemoNetwork(options: {
  dir: string;
  agents: number;
  log: Logger;
  /** Demo tuning, e.g. a short stall timeout so path changes show quickly. */
  stallTimeoutMs?: number;
}): Promise<{ agents: DemoAgent[]; redis: RedisHandle; stop: () => Promise<void> }> {
  const { names, links } = demoTopology(options.agents);
  prepareDataDir(options.dir);
  const redis = await openRedis({
    dir: join(options.dir, 'redis'),
    binary: 'redis-server',
    log: options.log,
  });
  const agents: DemoAgent[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(agents.map((a) => a.node.stop()));
    await redis.stop();
  };
  try {
    for (const name of names) agents.push(await startAgent(name, options, redis));
    const byName = new Map(agents.map((a) => [a.name, a]));
    for (const [inviter, invitee] of links) {
      const code = byName.get(inviter)!.node.links.createInvitation({ ttlMs: 60_000 });
      await byName.get(invitee)!.node.links.acceptInvitation(code);
    }
    const alice = byName.get('alice')!.node;
    const bob = byName.get('bob')!.node;
    await alice.trust.addEntity(bob.identity.entityPublicArmored, {
      trusted: false,
      contact: true,
      source: 'fingerprint',
    });
    await bob.trust.addEntity(alice.identity.entityPublicArmored, {
      trusted: false,
      contact: true,
      source: 'fingerprint',
    });
    return { agents, redis, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startAgent(
  name: string,
  options: { dir: string; log: Logger; stallTimeoutMs?: number },
  redis: RedisHandle,
): Promise<DemoAgent> {
  const dataDir = join(options.dir, name);
  const passphrase = randomBytes(18).toString('base64url');
  const paths = prepareDataDir(dataDir);
  const db = openDatabase(paths.database);
  try {
    await createIdentity(db, { name: capitalise(name), email: `${name}@demo.kith`, passphrase });
  } finally {
    db.close();
  }
  const config = loadConfig({
    env: {},
    overrides: {
      dataDir,
      logLevel: options.log.level as never,
      redis: { prefix: `kith-${name}` },
      p2p: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      smtp: { port: 0 },
      imap: { port: 0 },
      http: { port: 0 },
      delivery: options.stallTimeoutMs ? { stallTimeoutMs: options.stallTimeoutMs } : {},
    },
  });
  const node = new KithNode({ config, passphrase, log: options.log.child({ agent: name }), redis });
  await node.start();
  return { name, dataDir, node, settings: node.mailSettings };
}

function capitalise(name: string): string {
  return name[0].toUpperCase() + name.slice(1);
}

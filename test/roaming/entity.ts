import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { KithNode } from '../../agent/node.ts';
import {
  adoptBundleTrust,
  buildAgentBundle,
  bundleTrust,
  certifyNewAgent,
  importAgentBundle,
} from '../../agent/identity/bundle.ts';
import { createIdentity } from '../../agent/identity/identity.ts';
import { openRedis, type RedisHandle } from '../../agent/queue/connection.ts';
import { createTrustStore } from '../../agent/trust/index.ts';
import { silentLogger } from '../../common/logger.ts';
import { loadConfig } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { openDatabase } from '../../store/db.ts';
import { prepareDataDir } from '../../store/datadir.ts';
import { openGatewayImap } from '../helpers/imap-inbox.ts';
import { tempDir } from '../helpers/tmp.ts';

/** One device of the entity: its data directory, configuration and running node (if running). */
export interface Device {
  name: string;
  config: Readonly<Config>;
  node?: KithNode;
}

/** One entity with several agents (devices) on loopback, sharing one private redis-server. */
export interface Entity {
  passphrase: string;
  devices: Device[];
  device(name: string): Device;
  node(name: string): KithNode;
  /** Starts a stopped device again from its data directory (same port). */
  start(name: string): Promise<KithNode>;
  stop(name: string): Promise<void>;
  /** Links two running devices (the first dials the second). */
  link(from: string, to: string): Promise<void>;
  /** An IMAP client logged in to a device's gateway (imapflow, STARTTLS). */
  imap(name: string): Promise<ImapFlow>;
  close(): Promise<void>;
}

/**
 * The first device makes the entity (`kith init`); each other one is certified by it and
 * imported from an agent bundle, as `kith agent add` / `kith agent import` do.
 */
export async function startEntity(names: string[]): Promise<Entity> {
  const dir = tempDir('kith-roaming-');
  const passphrase = randomBytes(12).toString('base64url');
  const log = silentLogger();
  const shared = prepareDataDir(join(dir.path, 'shared'));
  const redis: RedisHandle = await openRedis({ dir: shared.redis, binary: 'redis-server', log });
  const devices: Device[] = [];
  const clients: ImapFlow[] = [];
  const configOf = (name: string, port = 0): Readonly<Config> =>
    loadConfig({
      env: {},
      overrides: {
        dataDir: join(dir.path, name),
        logLevel: 'silent',
        redis: { prefix: `kith-${name}` },
        p2p: { listen: [`/ip4/127.0.0.1/tcp/${port}`] },
        smtp: { port: 0 },
        imap: { port: 0 },
        http: { port: 0 },
        streams: { port: 0 },
      },
    });
  const device = (name: string): Device => {
    const d = devices.find((x) => x.name === name);
    if (!d) throw new RangeError(`no device ${name}`);
    return d;
  };
  const run = async (d: Device): Promise<KithNode> => {
    const node = new KithNode({ config: d.config, passphrase, log, redis });
    await node.start();
    d.node = node;
    const port = /\/tcp\/(\d+)/.exec(node.links.multiaddrs()[0]?.toString() ?? '')?.[1];
    if (port && d.config.p2p.listen[0].endsWith('/tcp/0')) d.config = configOf(d.name, Number(port));
    return node;
  };
  const entity: Entity = {
    passphrase,
    devices,
    device,
    node: (name) => {
      const n = device(name).node;
      if (!n) throw new Error(`${name} is not running`);
      return n;
    },
    start: (name) => run(device(name)),
    stop: async (name) => {
      const d = device(name);
      await d.node?.stop();
      d.node = undefined;
    },
    link: async (from, to) => {
      const target = entity.node(to);
      await entity.node(from).links.dial(`${target.links.multiaddrs()[0].toString()}`);
    },
    imap: async (name) => {
      const client = await openGatewayImap(entity.node(name).mailSettings);
      clients.push(client);
      return client;
    },
    close: async () => {
      for (const c of clients) await c.logout().catch(() => c.close());
      for (const d of devices) await d.node?.stop();
      await redis.stop();
      dir.remove();
      await new Promise((r) => setTimeout(r, 2100)); // libp2p's debounce timers (test/agents/network.ts)
    },
  };
  try {
    const [first, ...others] = names;
    const home: Device = { name: first, config: configOf(first) };
    prepareDataDir(home.config.dataDir);
    const db = openDatabase(join(home.config.dataDir, 'kith.db'));
    try {
      await createIdentity(db, { name: 'Alice', email: 'alice@roaming.kith', passphrase });
    } finally {
      db.close();
    }
    devices.push(home);
    const homeNode = await run(home);
    for (const name of others) {
      const agent = await certifyNewAgent(homeNode.identity);
      const bundle = await buildAgentBundle(homeNode.identity, agent, {
        siblings: homeNode.trust.certifiedAgents(homeNode.identity.fingerprint).map((a) => a.certificate),
        siblingAddresses: homeNode.links.multiaddrs().map((a) => a.toString()),
        revocations: [],
        contacts: [],
      });
      await homeNode.trust.addAgentCertificate(agent.certificate);
      const text = JSON.stringify(bundle);
      const d: Device = { name, config: configOf(name) };
      const paths = prepareDataDir(d.config.dataDir);
      const ddb = openDatabase(paths.database);
      try {
        const identity = await importAgentBundle(ddb, text, passphrase);
        await adoptBundleTrust(createTrustStore({ db: ddb, log }), identity, bundleTrust(text), log);
      } finally {
        ddb.close();
      }
      devices.push(d);
      await run(d);
    }
    return entity;
  } catch (err) {
    await entity.close();
    throw err;
  }
}

import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { defaultConfig } from '../../config/defaults.ts';
import type { Config } from '../../config/schema.ts';
import { asAgentId } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { certifyAgent } from '../../agent/identity/certificate.ts';
import { createIdentity, type Identity } from '../../agent/identity/identity.ts';
import { createLinks, type LinkManager } from '../../agent/links/index.ts';
import type { LinksOptions } from '../../agent/links/types.ts';
import { createTrustStore, type TrustStore } from '../../agent/trust/index.ts';
import { createReachability, type Reachability } from '../../agent/reachability/index.ts';
import { HANG_MS } from '../helpers/hang.ts';

/** One agent under test: real SQLite file, real libp2p on 127.0.0.1 port 0. */
export interface TestAgent {
  name: string;
  identity: Identity;
  db: Db;
  trust: TrustStore;
  links: LinkManager;
  reach: Reachability;
  address(): string;
  /** Stops and starts again on a new port, same identity and database (a changed address). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function p2pConfig(overrides: Partial<Config['p2p']> = {}): Config['p2p'] {
  return { ...defaultConfig().p2p, listen: ['/ip4/127.0.0.1/tcp/0'], ...overrides };
}

const dirs: string[] = [];

function freshDb(): Db {
  const dir = mkdtempSync(join(tmpdir(), 'kith-links-'));
  dirs.push(dir);
  return openDatabase(join(dir, 'kith.db'));
}

export function removeTempDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * Options a test may change: the link manager's provisional deadline and limits, the clock of
 * links and trust, and the address cache's own clock (reachClock: when a record counts as heard).
 */
export type LinkOptions = Pick<LinksOptions, 'provisionalMs' | 'provisionalLimits' | 'clock'> & {
  reachClock?: () => number;
};

/** A new entity with one agent, started. */
export async function startAgent(
  name: string,
  config: Partial<Config['p2p']> = {},
  linkOptions: LinkOptions = {},
): Promise<TestAgent> {
  const db = freshDb();
  const identity = await createIdentity(db, {
    name,
    email: `${name}@example.org`,
    passphrase: 'correct horse',
  });
  return startWith(name, identity, db, config, linkOptions);
}

/** An agent with a given identity (the same keys again) on a fresh database. */
export async function startAgentWith(
  name: string,
  identity: Identity,
  config: Partial<Config['p2p']> = {},
): Promise<TestAgent> {
  return startWith(name, identity, freshDb(), config, {});
}

/** Another agent of the same entity (a second device), certified by the entity key. */
export async function startSibling(
  of: TestAgent,
  name: string,
  options: { withoutEntityKey?: boolean; link?: LinkOptions } = {},
): Promise<TestAgent> {
  const sibling = await siblingIdentity(of.identity);
  // A device imported without the entity key (docs/protocol.md 7.8) holds its own keys only.
  const { entityKey: _key, entitySealedArmored: _sealed, ...bare } = sibling;
  const identity = options.withoutEntityKey ? bare : sibling;
  return startWith(name, identity, freshDb(), {}, options.link ?? {});
}

export async function siblingIdentity(entity: Identity): Promise<Identity> {
  const agentKey = await generateKeyPair('Ed25519');
  const agentId = asAgentId(peerIdFromPrivateKey(agentKey).toString());
  const onion = generateKeyPairSync('x25519');
  const onionPublic = onion.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const now = new Date();
  const certificate = await certifyAgent(entity.entityKey!, {
    agent: agentId,
    onionKey: onionPublic.toString('base64url'),
    notBefore: now,
    notAfter: new Date(now.getTime() + 86_400_000),
  });
  return {
    ...entity,
    agentId,
    agentKey,
    onion: { publicKey: onionPublic, privateKey: onion.privateKey },
    certificate,
  };
}

async function startWith(
  name: string,
  identity: Identity,
  db: Db,
  config: Partial<Config['p2p']>,
  linkOptions: LinkOptions,
): Promise<TestAgent> {
  const log = silentLogger();
  const trust = createTrustStore({ db, log, clock: linkOptions.clock });
  const p2p = p2pConfig(config);
  const agent = { name, identity, db, trust } as TestAgent;
  const up = async (): Promise<void> => {
    const { reachClock, ...linkSettings } = linkOptions;
    agent.links = createLinks({ identity, trust, config: p2p, log, ...linkSettings });
    await agent.links.start();
    agent.reach = createReachability({
      links: agent.links,
      trust,
      identity,
      db,
      config: p2p,
      log,
      clock: reachClock,
    });
    await agent.reach.start();
  };
  const down = async (): Promise<void> => {
    await agent.reach.stop();
    await agent.links.stop();
  };
  await up();
  agent.address = () => agent.links.multiaddrs()[0].toString();
  agent.restart = async () => {
    await down();
    await up();
  };
  agent.stop = async () => {
    await down();
    db.close();
  };
  return agent;
}

/**
 * Polls until `check` holds (links settle asynchronously), or fails with `what`. The deadline is
 * only there to name what never happened: it sits near the Jest timeout, so a loaded machine
 * makes a test slower, not red.
 */
export async function eventually(check: () => boolean, what: string, timeoutMs = HANG_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

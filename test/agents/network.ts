import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { callNode } from '../../agent/control/client.ts';
import type { KithNode } from '../../agent/node.ts';
import type { JobProgress } from '../../agent/queue/outbox.ts';
import { startNetwork, type Network, type Topology } from '../../cli/demo/network.ts';
import type { Fingerprint, MessageId } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import { testLogger } from '../helpers/log.ts';
import type { DeepPartial } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { createMailStore } from '../../gateway/mailbox/index.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';

export { until };

/** A running network of real KithNodes on loopback and the directory that holds it. */
export interface TestNetwork extends Network {
  dir: string;
  /** Stops everything and removes the directory. */
  close(): Promise<void>;
}

/**
 * Real agents for a topology: libp2p TCP on 127.0.0.1, SQLite files, one private redis-server.
 * A short stall timeout and discovery timeout keep path changes within a test's patience.
 */
export function startAgents(topology: Topology, overrides: DeepPartial<Config> = {}): Promise<TestNetwork> {
  const starting = start(topology, overrides);
  running.add(starting);
  starting.catch(() => running.delete(starting));
  return starting;
}

/**
 * Bounds of a file's beforeAll/afterAll around its network: hang detectors only, sized for a
 * loaded 2-core CI (four nodes took a minute to start beside a CPU hog and seven other jobs).
 */
export const START_BOUND_MS = 300_000;
export const STOP_BOUND_MS = 120_000;

/** Networks this test file started (each test file has its own copy of this module). */
const running = new Set<Promise<TestNetwork>>();

/**
 * Stops every network this test file started, also one whose start outlived its beforeAll's
 * bound: Jest gives up on the hook but not on the promise, and the nodes it then starts would
 * keep the worker alive for ever (a hang instead of a failure, seen under load).
 */
export async function closeAgents(): Promise<void> {
  const all = [...running];
  running.clear();
  await Promise.all(
    all.map((starting) =>
      starting.then(
        (net) => net.close(),
        () => undefined,
      ),
    ),
  );
}

async function start(topology: Topology, overrides: DeepPartial<Config>): Promise<TestNetwork> {
  const dir = tempDir('kith-agents-');
  let started: Network | undefined;
  try {
    const network = (started = await startNetwork({
      dir: join(dir.path, 'net'),
      topology,
      log: testLogger(),
      overrides: {
        ...overrides,
        delivery: { stallTimeoutMs: 3000, ...overrides.delivery },
        discovery: { timeoutMs: 3000, ...overrides.discovery },
      },
    }));
    await until(
      () =>
        topology.links.every(([x, y]) => knows(network, x, y) && knows(network, y, x)) ? true : undefined,
      'neighbours to exchange their addresses',
      START_BOUND_MS,
    );
    return Object.assign(network, {
      dir: dir.path,
      close: async () => {
        await network.stop();
        dir.remove();
        // libp2p leaves debounce timers behind at stop: its address manager's (1 s) fires after
        // stop and starts identify push's (1 s). Let both run out so the Jest worker can exit.
        await new Promise((r) => setTimeout(r, 2100));
      },
    });
  } catch (err) {
    // A network that started but never settled is stopped too: its nodes and redis-server would
    // keep the Jest worker alive for ever (a hang after the failure, seen under load).
    await started?.stop().catch(() => undefined);
    dir.remove();
    throw err;
  }
}

/** True once `who` holds a signed address record of its neighbour `of` (a restart dials it). */
function knows(network: Network, who: string, of: string): boolean {
  const agent = network.agent(of).node.identity.agentId;
  return network.agent(who).node.reachability.addressesOf(agent).length > 0;
}

/** A line a–b–c–…: each agent trusts only the next one; the ends are contacts when asked. */
export function line(names: string[], endsAreContacts = true): Topology {
  const links = names.slice(1).map((name, i) => [names[i], name] as [string, string]);
  return { names, links, contacts: endsAreContacts ? [[names[0], names[names.length - 1]]] : [] };
}

/** `kith send` through the node's control socket: the same path a user's command takes. */
export async function send(
  from: KithNode,
  to: KithNode,
  what: { text: string } | { file: string },
): Promise<MessageId> {
  const result = await callNode<{ id: MessageId; to: Fingerprint }>(
    join(from.paths.root, 'control.sock'),
    'send',
    { to: to.identity.fingerprint, ...what },
  );
  return result.id;
}

/**
 * A mail client (nodemailer: STARTTLS, AUTH) submits to the node's SMTP port, as Thunderbird
 * would; returns the Kith message id (the newest outbox entry).
 */
export async function mail(
  from: KithNode,
  to: KithNode,
  message: { subject: string; text: string },
): Promise<MessageId> {
  const s = from.mailSettings;
  const transport = nodemailer.createTransport({
    host: s.smtp.host,
    port: s.smtp.port,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: s.user, pass: s.pass },
  });
  try {
    const info = await transport.sendMail({ from: s.email, to: to.identity.email, ...message });
    if (info.accepted.length !== 1) throw new Error(`not accepted: ${info.response}`);
  } finally {
    transport.close();
  }
  return from.outbox.recent(1)[0].id;
}

/** The outbox entry and its hop-by-hop progress, as `kith track` shows it. */
export function progress(node: KithNode, id: MessageId): JobProgress {
  return node.outbox.progressOf(id);
}

/** Every raw message in a mailbox of the node's mail store (what an IMAP client would fetch). */
export async function mailbox(node: KithNode, name = 'INBOX'): Promise<Buffer[]> {
  const store = createMailStore({ db: node.db, blobs: node.blobs, log: silentLogger() });
  await store.start();
  try {
    const box = store.mailbox(name);
    const uids = store.entries(box.id).map((e) => e.uid);
    const rows = store.messages(box.id, uids, { raw: true });
    return await Promise.all(rows.map((row) => store.readRaw(row)));
  } finally {
    await store.stop();
  }
}

/** The messages of a mailbox whose text contains `needle`. */
export async function messagesContaining(node: KithNode, needle: string, name = 'INBOX'): Promise<Buffer[]> {
  return (await mailbox(node, name)).filter((raw) => raw.includes(needle));
}

/** Waits a little longer to let any duplicate arrive, so "exactly once" can be asserted. */
export function settle(ms = 1500): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

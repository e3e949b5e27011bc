// Two devices of one entity, each behind its own MASQUERADE NAT that drops unsolicited packets, and a
// friend's public relay between them (circuit relay v2; no STUN, so no WebRTC upgrade can make their
// link direct): real `kith start` processes in network namespaces (test/netns/lab.ts), set up with
// the `kith` command only. Shared by test/roaming/netns.test.ts and bench/roaming/idle.ts.
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { NamespacedNode } from '../helpers/netns.ts';
import { NODE_ENV, link, until, type MailSettings } from '../helpers/kith-nodes.ts';
import { runKith } from '../helpers/cli.ts';
import { Lab, RELAY_IP } from '../netns/lab.ts';

export const RELAY_PORT = 4410;
export const EMAIL = 'alice@roaming.kith';

type Status = { agentId: string; addresses: string[] };
type AgentView = { agentId: string; self: boolean; linked: boolean };

/** An IMAP client (imapflow, STARTTLS) logged in with a node's mail settings. */
export async function imapOf(s: MailSettings): Promise<ImapFlow> {
  const client = new ImapFlow({
    host: s.imap.host,
    port: s.imap.port,
    secure: false,
    doSTARTTLS: true,
    auth: { user: s.user, pass: s.pass },
    tls: { rejectUnauthorized: false },
    logger: false,
  });
  await client.connect();
  return client;
}

export interface NatEntity {
  lab: Lab;
  carol: NamespacedNode;
  laptop: NamespacedNode;
  phone: NamespacedNode;
  /** Resolves once `node` has a link to its sibling (`kith agent list`). */
  linkedToSibling(node: NamespacedNode): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts carol (the relay), then the laptop (befriends carol, reserves with her, then `seed` fills
 * its mailbox over IMAP), then `kith agent add` on the laptop and `kith agent import` for the
 * phone, and the phone: all the phone knows at its start is the bundle (carol as a trusted contact,
 * the laptop's relayed address). `root` is a directory for the data directories; namespaces are
 * named `prefix`….
 */
export async function startNatEntity(
  root: string,
  prefix: string,
  seed: (laptop: ImapFlow) => Promise<void>,
): Promise<NatEntity> {
  const lab = new Lab(2, prefix);
  const nodes: NamespacedNode[] = [];
  const stop = async () => {
    for (const n of nodes.reverse()) await n.stop();
    await lab.teardown();
  };
  try {
    const relayAddress = `/ip4/${RELAY_IP}/tcp/${RELAY_PORT}`;
    const carol = new NamespacedNode(
      {
        root,
        name: 'carol',
        email: 'carol@example.org',
        env: {
          KITH_P2P_LISTEN: JSON.stringify([relayAddress]),
          // A public listening address is announced only once confirmed (NOTES.md): say it.
          KITH_P2P_ANNOUNCE: JSON.stringify([relayAddress]),
          KITH_P2P_RELAY_ENABLED: 'true',
          KITH_P2P_RELAY_MAX_BYTES_PER_CONNECTION: '0',
          // No STUN: ICE finds no way through the two NATs, so the siblings' link stays relayed.
          KITH_P2P_STUN_PORT: '0',
        },
      },
      lab.relay,
      RELAY_IP,
    );
    nodes.push(carol);
    await carol.start();
    const carolId = (await carol.call<Status>('status')).agentId;
    const natted = (name: string, site: number) =>
      new NamespacedNode(
        {
          root,
          name,
          email: EMAIL,
          env: { KITH_P2P_RELAYS: JSON.stringify([`${relayAddress}/p2p/${carolId}`]) },
        },
        lab.sites[site].host,
        lab.sites[site].hostIp,
      );
    const laptop = natted('laptop', 0);
    const phone = natted('phone', 1);
    nodes.push(laptop);
    await laptop.start();
    // The laptop befriends carol (her invitation; she then relays for every agent of alice's).
    await link(carol, laptop);
    await until(
      async () =>
        (await laptop.call<Status>('status')).addresses.some((a) => a.includes('/p2p-circuit'))
          ? true
          : undefined,
      'the laptop reserved with carol',
    );
    const client = await imapOf(await laptop.settings());
    try {
      await seed(client);
    } finally {
      await client.logout();
    }
    const file = join(root, 'phone.kith-agent');
    const added = laptop.kith(['agent', 'add', '--out', file]);
    if (added.status !== 0) throw new Error(`kith agent add: ${added.stderr}`);
    const imported = runKith(['--data-dir', phone.dataDir, 'agent', 'import', file], NODE_ENV);
    if (imported.status !== 0) throw new Error(`kith agent import: ${imported.stderr}`);
    nodes.push(phone);
    await phone.start();
    return {
      lab,
      carol,
      laptop,
      phone,
      linkedToSibling: async (node) => {
        await until(
          async () =>
            (await node.call<AgentView[]>('agent.list')).some((a) => !a.self && a.linked) ? true : undefined,
          `${node.name} linked with its sibling`,
        );
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The phone's own announced addresses: relayed ones through carol (its only way to anyone). */
export async function relayedAddresses(node: NamespacedNode): Promise<string[]> {
  const addresses = (await node.call<Status>('status')).addresses;
  return addresses.filter((a) => a.includes(`${RELAY_IP}/tcp/${RELAY_PORT}/`) && a.includes('/p2p-circuit'));
}

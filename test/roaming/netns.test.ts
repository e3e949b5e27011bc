// Roaming behind NATs, in network namespaces: two devices of one entity, each behind its own
// MASQUERADE NAT that drops unsolicited packets, reach each other only through a friend's public
// relay (circuit relay v2; no STUN, so no WebRTC upgrade can make the link direct). Real `kith start`
// processes, driven by the `kith` command and IMAP only. Skips (with the reason) where namespaces
// cannot be made; creates only namespaces named kr-… (this room's prefix).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ImapFlow } from 'imapflow';
import type { NamespacedNode } from '../helpers/netns.ts';
import { until } from '../helpers/kith-nodes.ts';
import { tempDir } from '../helpers/tmp.ts';
import { netnsUnavailable } from '../netns/lab.ts';
import { act, rng, settledState } from './imap-actions.ts';
import { EMAIL, imapOf, relayedAddresses, startNatEntity, type NatEntity } from './nat-entity.ts';

const PREFIX = 'kr-';
const unavailable = netnsUnavailable(PREFIX);
if (unavailable) console.warn(`skipping roaming namespace tests: ${unavailable}`);
const suite = unavailable ? describe.skip : describe;

const MESSAGES = 12;

suite('roaming behind NATs: two devices of one entity, only a friend’s relay between them', () => {
  const dir = tempDir('kith-roaming-netns-');
  let net: NatEntity;
  let laptop: NamespacedNode;
  let phone: NamespacedNode;
  const clients: ImapFlow[] = [];
  /** One IMAP client per device run (a restart gives new ports and bridges). */
  const open = new Map<NamespacedNode, { pid: number | undefined; client: ImapFlow }>();
  const imap = async (node: NamespacedNode): Promise<ImapFlow> => {
    const held = open.get(node);
    // (a session whose selected mailbox a sibling deleted is closed by the server: open another)
    if (held && held.pid === node.pid && held.client.usable) return held.client;
    const client = await imapOf(await node.settings());
    clients.push(client);
    open.set(node, { pid: node.pid, client });
    return client;
  };

  /** Waits until both devices show the same mailboxes, messages and flags over IMAP. */
  const converged = async (what: string): Promise<string> => {
    let last: string[] = [];
    await until(async () => {
      const looks = [await settledState(await imap(laptop)), await settledState(await imap(phone))];
      if (looks.some((look) => look === undefined)) return undefined;
      last = looks as string[];
      return last[0] === last[1] ? true : undefined;
    }, what).catch((err: Error) => {
      throw new Error(`${err.message}\n--- laptop\n${last[0]}\n--- phone\n${last[1]}`);
    });
    return last[0];
  };

  beforeAll(async () => {
    const started = Date.now();
    net = await startNatEntity(dir.path, PREFIX, async (client) => {
      await client.mailboxCreate('Work');
      await client.mailboxCreate('Lists');
      for (let i = 0; i < MESSAGES; i++) {
        const raw = `From: ${EMAIL}\r\nTo: ${EMAIL}\r\nSubject: m${i}\r\n\r\nbody ${i}\r\n`;
        await client.append(i % 3 === 0 ? 'Work' : 'INBOX', Buffer.from(raw), i % 2 === 0 ? ['\\Seen'] : []);
      }
    });
    ({ laptop, phone } = net);
    console.info(`relay, laptop and phone started and set up in ${Date.now() - started} ms`);
  });

  afterAll(async () => {
    for (const c of clients) await c.logout().catch(() => c.close());
    await net?.stop();
    dir.remove();
  });

  it('the new device behind its NAT receives the whole history through the relay', async () => {
    await net.linkedToSibling(phone);
    const final = await converged('the history on the phone');
    expect([...final.matchAll(/\bm\d+\b/g)].length).toBe(MESSAGES);
    // Its only way to the laptop is carol: its own announced addresses are relayed ones too.
    expect(await relayedAddresses(phone)).not.toEqual([]);
  });

  it('a mail client idling on the phone hears a flag set on the laptop, through the relay (IDLE)', async () => {
    const watcher = await imapOf(await phone.settings());
    clients.push(watcher);
    await watcher.mailboxOpen('INBOX');
    const heard = new Promise<{ flags: Set<string> }>((resolve) => watcher.once('flags', resolve));
    void watcher.idle();
    const client = await imap(laptop);
    const lock = await client.getMailboxLock('INBOX');
    const t0 = Date.now();
    try {
      const uids = (await client.search({ subject: 'm1' }, { uid: true })) || [];
      await client.messageFlagsAdd(String(uids[0]), ['$Important'], { uid: true });
    } finally {
      lock.release();
    }
    const event = await heard;
    expect([...event.flags]).toContain('$Important');
    // Timed, not asserted (bench/roaming/idle.ts measures it): this only shows the path works.
    console.info(`IDLE on the phone heard the laptop's flag through the relay after ${Date.now() - t0} ms`);
  });

  it('each device offline in turn: the other changes things, and they converge again through the relay', async () => {
    const seed = Number(process.env.KITH_ROAMING_SEED) || 7;
    process.stdout.write(`roaming behind NATs: seed ${seed} (repeat with KITH_ROAMING_SEED=${seed})\n`);
    const random = rng(seed);
    const expunged = new Set<string>();
    for (const [away, online] of [
      [phone, laptop],
      [laptop, phone],
    ]) {
      await away.stop();
      for (let i = 0; i < 10; i++)
        for (const s of await act(await imap(online), random, { folders: true })) expunged.add(s);
      const back = Date.now();
      await away.start();
      await net.linkedToSibling(away);
      console.info(`${away.name} started again and linked with its sibling in ${Date.now() - back} ms`);
      await converged(`convergence after ${away.name} came back`);
    }
    const final = await converged('the end');
    const subjects = [...final.matchAll(/\bm\d+\b/g)].map((m) => m[0]).sort();
    const expected = Array.from({ length: MESSAGES }, (_, i) => `m${i}`).filter((m) => !expunged.has(m));
    expect(subjects).toEqual(expected.sort());
  });
});

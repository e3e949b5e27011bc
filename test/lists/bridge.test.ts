import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { callNode } from '../../agent/control/client.ts';
import type { KithNode } from '../../agent/node.ts';
import { dataPaths } from '../../store/datadir.ts';
import { messagesContaining, startAgents, until, type TestNetwork } from '../agents/network.ts';
import { OUTSIDE_PASS, startOutsideMail, type OutsideMail } from '../helpers/outside-mail.ts';
import { tempDir } from '../helpers/tmp.ts';
import { inboxMatching, smtpPost, starAround } from './network.ts';

interface BridgeView {
  counts: { in: number; out: number; pending: number; failed: number; dropped: number };
  drops: { messageId?: string; reason: string }[];
  waiting: { messageId: string; attempts: number; error?: string }[];
}

/**
 * An existing Internet mailing list bridged in: Debian's Postfix + mlmmj + Dovecot on loopback are
 * the outside list's server (test/helpers/outside-mail.ts); kith@outside.test is subscribed to the
 * mlmmj list dev@outside.test, and so is carol@outside.test, a person outside Kith. Two Kith
 * members of the bridge entity read and write over their own gateways.
 */
describe('a bridge between an mlmmj list (Postfix + Dovecot on loopback) and Kith members', () => {
  const dir = tempDir('kith-bridge-');
  let outside: OutsideMail;
  let net: TestNetwork;
  let host: KithNode;
  let m1: KithNode;
  let m2: KithNode;
  const control = <T = Record<string, unknown>>(method: string, params: Record<string, unknown>) =>
    callNode<T>(join(host.paths.root, 'control.sock'), method, params);
  const bridgeView = () => control<BridgeView>('bridge.show', { name: 'dev' });

  /** Carol, outside Kith, posts to the outside list with her own mail client (nodemailer). */
  const carolPosts = async (subject: string, text: string, messageId: string) => {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: outside.smtpPort,
      secure: false,
      ignoreTLS: true,
    });
    try {
      await transport.sendMail({
        from: 'Carol Outside <carol@outside.test>',
        to: outside.list,
        subject,
        text,
        messageId,
      });
    } finally {
      transport.close();
    }
  };

  beforeAll(async () => {
    outside = await startOutsideMail(join(dir.path, 'outside'));
    outside.subscribe('kith@outside.test');
    outside.subscribe('carol@outside.test');
    net = await startAgents({ names: ['host', 'm1', 'm2'], links: [] });
    host = net.agent('host').node;
    [m1, m2] = ['m1', 'm2'].map((n) => net.agent(n).node);
    await starAround(host, [m1, m2]);
    const list = await control<{ publicKey: string }>('bridge.add', {
      name: 'dev',
      email: 'dev@lists.kith',
      listAddress: outside.list,
      address: 'kith@outside.test',
      imapHost: '127.0.0.1',
      imapPort: outside.imapPort,
      imapTls: 'none',
      imapUser: 'kith',
      imapPass: OUTSIDE_PASS,
      smtpHost: '127.0.0.1',
      smtpPort: outside.smtpPort,
      smtpTls: 'none',
    });
    for (const m of [m1, m2]) {
      await control('list.add', { name: 'dev', who: m.identity.email });
      await m.trust.addEntity(list.publicKey, { trusted: false, contact: true, source: 'fingerprint' });
    }
  });
  afterAll(async () => {
    await net?.close();
    await outside?.stop();
    dir.remove();
  }, 120_000);

  it('bad settings are refused with ERR_BAD_BRIDGE and no list is made', async () => {
    await expect(
      control('bridge.add', {
        name: 'broken',
        email: 'broken@lists.kith',
        listAddress: 'not an address',
        address: 'kith@outside.test',
      }),
    ).rejects.toMatchObject({ code: 'ERR_BAD_BRIDGE' });
    const lists = await control<{ name: string }[]>('list.show', {});
    expect(lists.map((l) => l.name)).toEqual(['dev']);
  });

  it('a post to the outside list reaches every Kith member over IMAP, signed by the bridge, the original From kept', async () => {
    await carolPosts('hello from outside', 'carol writes to the list', '<carol-1@outside.test>');
    for (const m of [m1, m2]) {
      const [copy] = await inboxMatching(m, /carol writes to the list/);
      expect(copy).toMatch(/^From: "Carol Outside via dev" <dev@lists\.kith>\r?$/m);
      expect(copy).toMatch(/^X-Original-From: Carol Outside <carol@outside\.test>\r?$/m);
      expect(copy).toMatch(/^Subject: \[dev\] hello from outside\r?$/m);
      expect(copy).toMatch(/^Message-ID: <carol-1@outside\.test>\r?$/im);
      expect(copy).toMatch(/^List-Id: "dev" <dev\.lists\.kith>\r?$/m);
      expect(copy).toMatch(/kith=pass header\.from=dev@lists\.kith/);
      // The outside servers' routing stays outside.
      expect(copy).not.toMatch(/mx\.outside\.test/);
    }
  });

  it('the same post coming again (same Message-ID) is dropped as a duplicate, its reason in the bridge log', async () => {
    await carolPosts('hello from outside', 'carol writes to the list', '<carol-1@outside.test>');
    const view = await until(async () => {
      const v = await bridgeView();
      return v.drops.some((d) => d.messageId === '<carol-1@outside.test>' && d.reason === 'duplicate')
        ? v
        : undefined;
    }, 'the duplicate dropped');
    expect(view.counts.in).toBe(1);
    for (const m of [m1, m2]) expect(await messagesContaining(m, 'carol writes to the list')).toHaveLength(1);
  });

  it('a member’s post goes to the members and out to the outside list with list headers; its echo is dropped as a loop', async () => {
    const messageId = await smtpPost(m1, 'dev@lists.kith', 'from inside', 'm1 writes to everyone');
    await inboxMatching(m2, /m1 writes to everyone/);
    const [outsideCopy] = await until(async () => {
      const found = (await outside.inbox('carol')).filter((r) => r.includes('m1 writes to everyone'));
      return found.length > 0 ? found : undefined;
    }, 'the post in carol’s mailbox').catch(async (err) => {
      console.log(JSON.stringify(await bridgeView()), outside.log().slice(-6000));
      throw err;
    });
    expect(outsideCopy).toMatch(/^From: "M1 via dev" <kith@outside\.test>\r?$/m);
    expect(outsideCopy).toMatch(/^List-Id: "dev \(Kith\)" <dev\.lists\.kith>\r?$/m);
    expect(outsideCopy).toMatch(/^List-Post: <mailto:dev@outside\.test>\r?$/m);
    expect(outsideCopy).toMatch(/^X-Loop: kith@outside\.test\r?$/m);
    expect(outsideCopy).toContain(`Message-ID: ${messageId}`);
    // The member's Kith address and routing never leave the network.
    expect(outsideCopy).not.toContain(m1.identity.email);
    expect(outsideCopy).not.toMatch(/192\.0\.2\.7|laptop\.home/);
    // mlmmj sent it back to the subscribed mailbox too: the bridge dropped it.
    const view = await until(async () => {
      const v = await bridgeView();
      return v.drops.some((d) => d.messageId === messageId && d.reason.startsWith('loop')) ? v : undefined;
    }, 'the echo dropped as a loop');
    expect(view.counts).toMatchObject({ out: 1, pending: 0, failed: 0 });
    for (const m of [m1, m2]) expect(await messagesContaining(m, 'm1 writes to everyone')).toHaveLength(1);
    expect((await outside.inbox('carol')).filter((r) => r.includes('m1 writes to everyone'))).toHaveLength(1);
  });
  it('the outside passwords are sealed at rest: the list’s SQLite files hold no password bytes', () => {
    const db = dataPaths(join(host.paths.root, 'lists', 'dev')).database;
    for (const file of [db, `${db}-wal`].filter((f) => existsSync(f)))
      expect(readFileSync(file).includes(Buffer.from(OUTSIDE_PASS))).toBe(false);
  });

  it('with the outside relay down a member’s post is kept, waits with the reason, and goes out once the relay is back', async () => {
    await outside.stopSmtp();
    const messageId = await smtpPost(m2, 'dev@lists.kith', 'relay down', 'm2 writes while the relay is down');
    await inboxMatching(m1, /m2 writes while the relay is down/);
    const waiting = await until(async () => {
      const v = await bridgeView();
      const w = v.waiting.find((x) => x.messageId === messageId);
      return w && w.attempts >= 1 ? { v, w } : undefined;
    }, 'the post waiting for the relay after a failed attempt');
    expect(waiting.w.error).toMatch(/ECONNREFUSED|connect/i);
    expect(waiting.v.counts).toMatchObject({ pending: 1, failed: 0 });
    // Removing the bridge now would give the post up: refused, nothing changes.
    await expect(control('bridge.remove', { name: 'dev' })).rejects.toMatchObject({
      code: 'ERR_BRIDGE_PENDING',
    });
    await outside.startSmtp();
    expect(await control<{ due: number }>('bridge.retry', { name: 'dev' })).toMatchObject({ due: 1 });
    await until(async () => {
      const found = (await outside.inbox('carol')).filter((r) =>
        r.includes('m2 writes while the relay is down'),
      );
      return found.length > 0 ? found : undefined;
    }, 'the kept post in carol’s mailbox once the relay is back');
    const after = await until(async () => {
      const v = await bridgeView();
      return v.counts.pending === 0 ? v : undefined;
    }, 'nothing waiting any more');
    expect(after.counts).toMatchObject({ out: 2, failed: 0 });
    expect(
      (await outside.inbox('carol')).filter((r) => r.includes('m2 writes while the relay is down')),
    ).toHaveLength(1);
  });

  it('`bridge.remove` ends the bridge: settings and passwords deleted, the list goes on without the outside', async () => {
    expect(await control('bridge.remove', { name: 'dev' })).toMatchObject({ name: 'dev', failed: 0 });
    await expect(bridgeView()).rejects.toMatchObject({ code: 'ERR_NOT_A_BRIDGE' });
    const listNode = host.lists!.get('dev').node;
    expect(listNode.db.prepare('SELECT count(*) AS n FROM bridge_settings').get()).toEqual({ n: 0 });
    // Still a Kith list: a member's post reaches the other member, and is not queued for the outside.
    await smtpPost(m1, 'dev@lists.kith', 'after the bridge', 'm1 writes after the bridge is gone');
    await inboxMatching(m2, /m1 writes after the bridge is gone/);
    const outbound = listNode.db.prepare('SELECT count(*) AS n FROM bridge_outbound').get() as { n: number };
    expect(outbound.n).toBe(2);
  });
});

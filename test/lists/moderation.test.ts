import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { callNode } from '../../agent/control/client.ts';
import type { KithNode } from '../../agent/node.ts';
import { startAgents, until, type TestNetwork } from '../agents/network.ts';
import { inboxMatching, smtpPost, starAround } from './network.ts';

interface Tracked {
  id: string;
  subject: string;
  decision: string;
  reason?: string;
  counts: { delivered: number };
}

describe('moderation by signed reply, mail commands and a chat room, on real agents', () => {
  let net: TestNetwork;
  let host: KithNode;
  let m: KithNode[];
  const control = <T = Record<string, unknown>>(method: string, params: Record<string, unknown>) =>
    callNode<T>(join(host.paths.root, 'control.sock'), method, params);

  beforeAll(async () => {
    const names = ['m1', 'm2', 'm3', 'm4'];
    net = await startAgents({ names: ['host', ...names, 'newcomer'], links: [] });
    host = net.agent('host').node;
    m = names.map((n) => net.agent(n).node);
    await starAround(host, m);
    for (const [name, extra] of [
      ['mod', { policy: 'moderated' }],
      ['room', { policy: 'members', chat: true }],
    ] as const) {
      const list = await control<{ publicKey: string }>('list.create', {
        name,
        email: `${name}@lists.kith`,
        ...extra,
      });
      for (const node of m) {
        await control('list.add', { name, who: node.identity.email, moderator: node === m[0] });
        await node.trust.addEntity(list.publicKey, { trusted: false, contact: true, source: 'fingerprint' });
      }
    }
  });
  afterAll(async () => net?.close(), 120_000);

  it('a member’s post is held; a non-moderator’s "approve" is dropped; the moderator’s signed "approve" sends it to all', async () => {
    await smtpPost(m[1], 'mod@lists.kith', 'needs approval', 'held post body');
    await inboxMatching(m[1], /^Subject: Held for a moderator: needs approval/m);
    const [request] = await inboxMatching(m[0], /^Subject: Moderation: [0-9a-f]{32} needs approval/m);
    const postId = /^Subject: Moderation: ([0-9a-f]{32})/m.exec(request)![1];
    expect(request).toContain('held post body');
    // Not a moderator: m3's approval is recorded as a moderation reply and changes nothing.
    await smtpPost(m[2], 'mod@lists.kith', `Re: Moderation: ${postId} needs approval`, 'approve');
    const afterForged = await until(async () => {
      const posts = await control<Tracked[]>('list.track', { name: 'mod' });
      return posts.some((p) => p.subject.startsWith('Re: Moderation') && p.reason === 'moderation reply')
        ? posts
        : undefined;
    }, 'the list to take the non-moderator’s answer');
    expect(afterForged.find((p) => p.id === postId)).toMatchObject({ decision: 'hold' });
    await smtpPost(
      m[0],
      'mod@lists.kith',
      `Re: Moderation: ${postId} needs approval`,
      'approve\n\n> quoted text',
    );
    for (const node of m) {
      const [copy] = await inboxMatching(node, /held post body/);
      expect(copy).toMatch(/^List-Id: "mod" <mod\.lists\.kith>\r?$/m);
      expect(copy).toMatch(/^Subject: needs approval\r?$/m);
    }
    const [post] = await control<Tracked[]>('list.track', { name: 'mod', post: postId });
    expect(post).toMatchObject({ decision: 'distribute', reason: 'approved' });
  }, 300_000);

  it('a moderator’s "reject <reason>" tells the poster why and sends nothing', async () => {
    await smtpPost(m[2], 'mod@lists.kith', 'off topic', 'rejected post body');
    const [request] = await inboxMatching(m[0], /^Subject: Moderation: [0-9a-f]{32} off topic/m);
    const postId = /^Subject: Moderation: ([0-9a-f]{32})/m.exec(request)![1];
    await smtpPost(m[0], 'mod@lists.kith', `Re: Moderation: ${postId} off topic`, 'reject not for this list');
    const [answer] = await inboxMatching(m[2], /^Subject: Not distributed: off topic/m);
    expect(answer).toMatch(/a moderator rejected it \(not for this list\)/);
    const [post] = await control<Tracked[]>('list.track', { name: 'mod', post: postId });
    expect(post).toMatchObject({ decision: 'refuse', reason: 'rejected by a moderator' });
    // No copy went out: no message's own header is the post's (the moderator's request quotes it in its body).
    for (const node of m) {
      const heads = (await inboxMatching(node, /./)).map((r) => r.slice(0, r.search(/\r?\n\r?\n/)));
      expect(heads.some((h) => /^Subject: off topic\r?$/m.test(h) && /^List-Id:/m.test(h))).toBe(false);
    }
  }, 300_000);

  it('"help" and "unsubscribe" by mail (as Thunderbird’s List-Unsubscribe sends it) are answered; the member is gone', async () => {
    await smtpPost(m[3], 'mod@lists.kith', 'help', '');
    const [help] = await inboxMatching(m[3], /^Subject: Help for mod/m);
    expect(help).toMatch(/unsubscribe {2}leave the list/);
    await smtpPost(m[3], 'mod@lists.kith', 'unsubscribe', '');
    await inboxMatching(m[3], /^Subject: You have left mod/m);
    const members = await control<{ fingerprint: string }[]>('list.members', { name: 'mod' });
    expect(members.map((x) => x.fingerprint)).not.toContain(m[3].identity.fingerprint);
    expect(members).toHaveLength(3);
  }, 300_000);

  it('a chat room: posts go out at once and every post without a thread of its own joins the room’s conversation', async () => {
    await smtpPost(m[1], 'room@lists.kith', 'hi all', 'chat line one');
    await smtpPost(m[2], 'room@lists.kith', 'hello', 'chat line two');
    for (const line of ['chat line one', 'chat line two']) {
      const [copy] = await inboxMatching(m[3], new RegExp(line));
      expect(copy).toMatch(/^References: <room\.room\.lists\.kith@kith>\r?$/m);
      expect(copy).toMatch(/^In-Reply-To: <room\.room\.lists\.kith@kith>\r?$/m);
    }
  }, 300_000);

  it('`kith invite --list room`: whoever redeems the list’s invitation is linked with it, a member, and can post at once', async () => {
    const newcomer = net.agent('newcomer').node;
    const { code } = await control<{ code: string }>('list.invite', { name: 'room', ttlMinutes: 10 });
    const list = await newcomer.links.acceptInvitation(code);
    expect(list.email).toBe('room@lists.kith');
    await until(async () => {
      const members = await control<{ fingerprint: string }[]>('list.members', { name: 'room' });
      return members.some((x) => x.fingerprint === newcomer.identity.fingerprint) ? true : undefined;
    }, 'the newcomer among the members');
    await smtpPost(newcomer, 'room@lists.kith', 'new here', 'newcomer line');
    for (const node of [...m, newcomer]) await inboxMatching(node, /newcomer line/);
  }, 300_000);
});

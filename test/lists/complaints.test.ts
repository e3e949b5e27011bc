import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ImapFlow } from 'imapflow';
import { join } from 'node:path';
import { callNode } from '../../agent/control/client.ts';
import type { KithNode } from '../../agent/node.ts';
import type { SpamEvent } from '../../agent/spam/control.ts';
import { complaintThreshold, DEFAULT_SPAM_POLICY } from '../../agent/spam/decisions.ts';
import { SpamStore } from '../../agent/spam/store.ts';
import type { MessageId } from '../../common/ids.ts';
import { closeAgents, startAgents, until, type TestNetwork } from '../agents/network.ts';
import { runKithAsync } from '../helpers/cli.ts';
import { imapOf, move, waitForSubject } from '../spam/imap.ts';
import { inboxMatching, smtpPost, starAround } from './network.ts';

/**
 * Complaints about list mail (issue 11): real KithNodes on loopback. The host hosts the list;
 * poster and subscriber link with the host only, so a post goes poster -> host -> list and each
 * copy list -> host -> subscriber. The subscriber moves a copy to Junk over IMAP (imapflow MOVE).
 */
const SPAM = { minComplaints: 1, complaintRatio: 0.5, maxComplaints: 5, settleMs: 1000 };

describe('list mail on three real nodes: `kith track` on the host; complaints count against the poster’s path, not the list', () => {
  let net: TestNetwork;
  let host: KithNode;
  let poster: KithNode;
  let sub: KithNode;
  let imap: ImapFlow;
  const hostEvents: SpamEvent[] = [];
  const control = <T>(method: string, params: Record<string, unknown>) =>
    callNode<T>(join(host.paths.root, 'control.sock'), method, params);

  beforeAll(async () => {
    net = await startAgents({ names: ['host', 'poster', 'sub'], links: [] }, { spam: SPAM });
    host = net.agent('host').node;
    poster = net.agent('poster').node;
    sub = net.agent('sub').node;
    await starAround(host, [poster, sub]);
    const list = await control<{ publicKey: string }>('list.create', {
      name: 'dev',
      email: 'dev@lists.kith',
    });
    for (const m of [poster, sub]) {
      await control('list.add', { name: 'dev', who: m.identity.email });
      await m.trust.addEntity(list.publicKey, { trusted: false, contact: true, source: 'fingerprint' });
    }
    host.spam.onEvent((e) => hostEvents.push(e));
    imap = await imapOf(sub);
  });
  afterAll(async () => {
    await imap?.logout().catch(() => undefined);
    await closeAgents();
  });

  it('`kith track POST` on the list’s host shows every subscriber’s copy; on the poster’s node, its own delivery to the list', async () => {
    for (const subject of ['first offer', 'second offer']) {
      await smtpPost(poster, 'dev@lists.kith', subject, `${subject} body`);
      await inboxMatching(poster, new RegExp(`Your post "${subject}" to dev went to 2`));
    }
    const posts = await control<Array<{ id: MessageId; subject: string }>>('list.track', { name: 'dev' });
    const postId = posts.find((p) => p.subject === 'first offer')!.id;
    const onHost = await runKithAsync(['--data-dir', host.paths.root, 'track', postId, '--once']);
    expect(onHost.stderr).toBe('');
    expect(onHost.stdout).toMatch(/^post to the list dev, one copy per subscriber:$/m);
    expect(onHost.stdout).toMatch(
      new RegExp(
        `^${postId} .* "first offer"  distribute  delivered 2, delayed 0, pending 0, failed 0$`,
        'm',
      ),
    );
    for (const m of [poster, sub])
      expect(onHost.stdout).toMatch(
        new RegExp(
          `^  ${m.identity.fingerprint}  delivered  \\(into the subscriber's mailbox 20\\S+Z\\)$`,
          'm',
        ),
      );
    // The poster's node sent it to the list's entity: its own hop by hop, no subscriber named.
    const onPoster = await runKithAsync(['--data-dir', poster.paths.root, 'track', postId, '--once']);
    expect(onPoster.stderr).toBe('');
    expect(onPoster.stdout).toMatch(new RegExp(`^message ${postId} to .*: delivered$`, 'm'));
    expect(onPoster.stdout).not.toContain('one copy per subscriber');
    expect(onPoster.stdout).not.toContain(sub.identity.fingerprint);
  });

  it('the list carries the Junk move on along the post’s inbound path; the poster is cut off; the cut clears the list', async () => {
    const listNode = host.lists!.get('dev').node;
    const listAgent = listNode.identity.agentId;
    const posterAgent = poster.identity.agentId;
    await waitForSubject(imap, 'INBOX', 'first offer');
    // A list hands on more than one poster does (a copy per subscriber, summaries): the threshold
    // grows with traffic, so one complaint suspends the poster at the host and not the list.
    const policy = { ...DEFAULT_SPAM_POLICY, ...SPAM };
    expect(complaintThreshold(host.spam.trafficOf(posterAgent), policy)).toBe(1);
    expect(complaintThreshold(host.spam.trafficOf(listAgent), policy)).toBeGreaterThan(1);

    await move(imap, 'first offer', 'INBOX', 'Junk');

    // The list carried it: its own complaint about the post, along the post's inbound path.
    const posts = await control<Array<{ id: MessageId; subject: string }>>('list.track', { name: 'dev' });
    const postId = posts.find((p) => p.subject === 'first offer')!.id;
    const listSpam = new SpamStore(listNode.db);
    const carried = await until(() => listSpam.complaintAbout(postId), 'the list’s complaint about the post');
    expect(carried.state).toBe('active');
    expect(carried.predecessor).toBe(host.identity.agentId);
    expect(listNode.engine.metrics.get('complaints_carried')).toBe(1);

    // At the host it counts against the poster's agent: suspended, then revoked (nobody upstream cuts it).
    await until(
      () => (hostEvents.some((e) => e.kind === 'revoked' && e.agent === posterAgent) ? true : undefined),
      'the host to revoke the poster',
    );
    // The cut came back through the list to the copy's complaint: cleared against the list.
    await until(
      () => (host.spam.facts(listAgent).openComplaints < 0.01 ? true : undefined),
      'the complaint against the list to be cleared',
    );
    const againstList = new SpamStore(host.db).allAgainst(listAgent);
    expect(againstList).toHaveLength(1);
    expect(againstList[0].clearedAt).not.toBeNull();
    expect(hostEvents.filter((e) => 'agent' in e && e.agent === listAgent)).toEqual([]);
    expect(host.spam.refuses(listAgent)).toBe(false);
    expect(host.spam.facts(listAgent).revoked).toBe(false);

    // Moving the copy back out of Junk withdraws the subscriber's complaint, and with it the list's.
    await move(imap, 'first offer', 'Junk', 'INBOX');
    await until(
      () => (listSpam.complaintAbout(postId)?.state === 'withdrawn' ? true : undefined),
      'the list’s carried complaint withdrawn',
    );

    // The list still works for the others: the subscriber's own post comes back to it.
    await smtpPost(sub, 'dev@lists.kith', 'still here', 'the list goes on');
    await waitForSubject(imap, 'INBOX', 'still here');
  });
});

import { describe, expect, it } from '@jest/globals';
import { countCopies, decidePost, summaryDue, type PostFacts } from '../../agent/lists/policy.ts';

const base: PostFacts = {
  policy: 'members',
  chat: false,
  maxBytes: 1000,
  size: 100,
  verified: true,
  poster: 'member',
  looped: false,
};

describe('decidePost', () => {
  it('members only: members and moderators post, contacts and strangers are refused with an answer', () => {
    expect(decidePost(base)).toEqual({ action: 'distribute' });
    expect(decidePost({ ...base, poster: 'moderator' })).toEqual({ action: 'distribute' });
    for (const poster of ['contact', 'stranger'] as const) {
      expect(decidePost({ ...base, poster })).toMatchObject({
        action: 'refuse',
        code: 'not-a-member',
        answer: true,
      });
    }
  });

  it('moderated: moderators post at once, members are held, others refused; a chat room holds nobody', () => {
    const moderated = { ...base, policy: 'moderated' as const };
    expect(decidePost({ ...moderated, poster: 'moderator' })).toEqual({ action: 'distribute' });
    expect(decidePost(moderated)).toMatchObject({ action: 'hold' });
    expect(decidePost({ ...moderated, poster: 'contact' })).toMatchObject({
      action: 'refuse',
      code: 'not-a-member',
    });
    expect(decidePost({ ...moderated, chat: true })).toEqual({ action: 'distribute' });
    expect(decidePost({ ...moderated, chat: true, poster: 'stranger' })).toMatchObject({ action: 'refuse' });
  });

  it('announce-only: only moderators post', () => {
    const announce = { ...base, policy: 'announce' as const };
    expect(decidePost({ ...announce, poster: 'moderator' })).toEqual({ action: 'distribute' });
    expect(decidePost(announce)).toMatchObject({ action: 'refuse', code: 'announce-only', answer: true });
  });

  it('open to contacts: members and contacts post, strangers are refused', () => {
    const open = { ...base, policy: 'contacts' as const };
    expect(decidePost({ ...open, poster: 'contact' })).toEqual({ action: 'distribute' });
    expect(decidePost(open)).toEqual({ action: 'distribute' });
    expect(decidePost({ ...open, poster: 'stranger' })).toMatchObject({
      action: 'refuse',
      code: 'not-a-contact',
    });
  });

  it('a loop and an unverified post are dropped without an answer, whatever the policy and the poster', () => {
    for (const policy of ['members', 'moderated', 'announce', 'contacts'] as const) {
      expect(decidePost({ ...base, policy, poster: 'moderator', looped: true })).toMatchObject({
        action: 'refuse',
        code: 'loop',
        answer: false,
      });
      expect(decidePost({ ...base, policy, poster: 'moderator', verified: false })).toMatchObject({
        action: 'refuse',
        code: 'unverified',
        answer: false,
      });
    }
  });

  it('a post past the size limit is refused with the sizes in the answer, even from a moderator', () => {
    const d = decidePost({ ...base, poster: 'moderator', size: 1001 });
    expect(d).toMatchObject({ action: 'refuse', code: 'too-large', answer: true });
    expect(d.action === 'refuse' && d.reason).toMatch(/1001 bytes.*1000 bytes/);
    expect(decidePost({ ...base, size: 1000 })).toEqual({ action: 'distribute' });
  });
});

describe('the poster’s one summary', () => {
  it('is due once every copy is final, or at the deadline with copies still under way', () => {
    const final = countCopies(['delivered', 'delivered', 'failed']);
    expect(final).toEqual({ delivered: 2, delayed: 0, failed: 1, pending: 0 });
    expect(summaryDue(final, 0, 1, 60_000)).toBe(true);
    const underWay = countCopies(['delivered', 'delayed', 'pending']);
    expect(summaryDue(underWay, 0, 59_999, 60_000)).toBe(false);
    expect(summaryDue(underWay, 0, 60_000, 60_000)).toBe(true);
  });
});

describe('a hosted list’s configuration', () => {
  it('takes none of the host’s ports and keeps its own data directory and Redis prefix', async () => {
    const { listConfig } = await import('../../agent/lists/host.ts');
    const { loadConfig } = await import('../../config/load.ts');
    const host = loadConfig({
      env: {},
      overrides: {
        dataDir: '/srv/kith',
        smtp: { port: 2525 },
        imap: { port: 1143 },
        http: { port: 8080 },
        p2p: { listen: ['/ip4/0.0.0.0/tcp/4001'], relay: { enabled: true } },
      },
    });
    const list = listConfig(host, '/srv/kith/lists/dev', 'dev');
    expect(list.dataDir).toBe('/srv/kith/lists/dev');
    expect(list.redis.prefix).toBe(`${host.redis.prefix}-list-dev`);
    expect([list.smtp.port, list.imap.port, list.imap.tlsPort, list.http.port, list.streams.port]).toEqual([
      0, 0, 0, 0, 0,
    ]);
    expect(list.streams.enabled).toBe(false);
    expect(list.p2p.listen).toEqual(['/ip4/127.0.0.1/tcp/0']);
    expect(list.p2p.relay.enabled).toBe(false);
  });
});

import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { ListService } from '../../agent/lists/service.ts';
import { ListStore, type ListSettings } from '../../agent/lists/store.ts';
import { BOUNCE_SPAN_MS } from '../../agent/lists/rules.ts';
import { asFingerprint, asMessageId, type Fingerprint, type MessageId } from '../../common/ids.ts';
import type { InboundMessage } from '../../gateway/delivery.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { tempDir } from '../helpers/tmp.ts';

/**
 * A list's rules for mail commands, oversized posts and bouncing members, on the real ListService
 * and ListStore (a SQLite file). The node around it is reduced to what the list uses: its
 * identity, the keys it holds and a delivery engine that records what the list submits (the wiring
 * through real agents is test/lists/loopback and moderation). The clock is the test's.
 */
const fp = (c: string): Fingerprint => asFingerprint(c.repeat(40));
const LIST = fp('A');
const people = {
  mod: { fingerprint: fp('B'), email: 'mod@home.kith', name: 'Mod' },
  carol: { fingerprint: fp('C'), email: 'carol@home.kith', name: 'Carol' },
  dave: { fingerprint: fp('D'), email: 'dave@home.kith', name: 'Dave' },
  erin: { fingerprint: fp('E'), email: 'erin@home.kith', name: 'Erin' },
};
type Who = keyof typeof people;

describe('list commands by mail, the size limit and bouncing members', () => {
  let dir: ReturnType<typeof tempDir>;
  let db: Db;
  let store: ListStore;
  let service: ListService;
  let now: number;
  let sent: { to: Fingerprint; id: MessageId; raw: string }[];
  let logged: { msg: string; [k: string]: unknown }[];
  let seq = 0;

  const settings: ListSettings = {
    name: 'dev',
    email: 'dev@lists.kith',
    policy: 'contacts',
    chat: false,
    maxBytes: 2000,
    summaryAfterMs: 600_000,
  };

  beforeEach(async () => {
    dir = tempDir();
    db = openDatabase(join(dir.path, 'kith.db'));
    now = 1_800_000_000_000;
    store = new ListStore(db, () => now);
    store.saveSettings(settings);
    store.addMember({ ...people.mod, moderator: true });
    sent = [];
    logged = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    service = new ListService({
      node: {
        identity: { fingerprint: LIST, email: settings.email, name: settings.name },
        trust: {
          entity: (f: Fingerprint) => {
            const p = Object.values(people).find((x) => x.fingerprint === f);
            return p ? ({ ...p, contact: true, publicKey: 'key' } as never) : undefined;
          },
        },
        delivery: {
          submit: async (m) => void sent.push({ to: m.to, id: m.id, raw: readFileSync(m.rawPath, 'utf8') }),
        },
      },
      store,
      archive: { receive: async () => undefined, status: async () => undefined },
      postsDir: join(dir.path, 'posts'),
      log,
      clock: () => now,
    });
    await service.start();
  });

  afterEach(async () => {
    await service.stop();
    db.close();
    dir.remove();
  });

  const message = (
    who: Who,
    subject: string,
    o: { verified?: boolean; headers?: string[]; body?: string } = {},
  ) => {
    const p = people[who];
    const raw = Buffer.from(
      [
        `From: ${p.name} <${p.email}>`,
        `To: ${settings.email}`,
        `Subject: ${subject}`,
        `Message-ID: <m${++seq}@client.test>`,
        ...(o.headers ?? []),
        '',
        o.body ?? 'text',
        '',
      ].join('\r\n'),
    );
    const m: InboundMessage = {
      id: asMessageId(seq.toString(16).padStart(32, '0')),
      raw,
      sender: p,
      verified: o.verified ?? true,
      receivedAt: new Date(now),
    };
    return m;
  };
  const post = async (who: Who, subject: string, o: Parameters<typeof message>[2] = {}) => {
    const m = message(who, subject, o);
    await service.receive(m);
    await service.idle();
    return m.id;
  };
  const answersTo = (who: Who) => sent.filter((s) => s.to === people[who].fingerprint);
  const subjectOf = (raw: string) => /^Subject: (.*)\r$/m.exec(raw)?.[1];
  const reasonOf = (id: MessageId) => store.post(id)?.reason;

  it('subscribe sends a confirmation token; the signed reply confirms; the token counts once', async () => {
    await post('carol', 'subscribe');
    expect(store.member(people.carol.fingerprint)).toBeUndefined();
    const [confirm] = answersTo('carol');
    const token = /^Confirm: ([0-9a-f]{32}) subscribe to dev$/.exec(subjectOf(confirm.raw)!)![1];
    expect(confirm.raw).toMatch(/^Auto-Submitted: auto-replied\r$/m);
    await post('carol', `Re: Confirm: ${token} subscribe to dev`);
    expect(store.member(people.carol.fingerprint)).toMatchObject({ email: 'carol@home.kith' });
    expect(subjectOf(answersTo('carol')[1].raw)).toBe('Welcome to dev');
    const again = await post('carol', `Re: Confirm: ${token} subscribe to dev`);
    expect(reasonOf(again)).toBe('used');
    expect(answersTo('carol')).toHaveLength(2);
  });

  it('a confirmation sent with someone else’s token is forged: dropped unanswered, the reason in the log', async () => {
    await post('carol', 'subscribe');
    const token = /Confirm: ([0-9a-f]{32})/.exec(subjectOf(answersTo('carol')[0].raw)!)![1];
    const forged = await post('dave', `Re: Confirm: ${token} subscribe to dev`);
    expect(reasonOf(forged)).toBe('forged-confirmation');
    expect(answersTo('dave')).toHaveLength(0);
    expect(store.member(people.carol.fingerprint)).toBeUndefined();
    expect(store.member(people.dave.fingerprint)).toBeUndefined();
    expect(logged).toContainEqual(
      expect.objectContaining({ msg: 'list: confirmation refused', code: 'forged-confirmation' }),
    );
  });

  it('a forged command (its signature did not verify) changes nothing and is not answered', async () => {
    store.addMember({ ...people.erin, moderator: false });
    const forged = await post('erin', 'unsubscribe', { verified: false });
    expect(reasonOf(forged)).toBe('forged-command');
    expect(store.member(people.erin.fingerprint)).toBeDefined();
    expect(sent).toHaveLength(0);
    expect(logged.some((l) => l.msg.startsWith('list: a forged command dropped'))).toBe(true);
  });

  it('a subscribe loop: an automatic request, and a fourth request within the hour, get no answer', async () => {
    const auto = await post('dave', 'subscribe', { headers: ['Auto-Submitted: auto-replied'] });
    const fromAList = await post('dave', 'subscribe', { headers: ['List-Id: <other.lists.kith>'] });
    expect([reasonOf(auto), reasonOf(fromAList)]).toEqual(['subscribe-loop', 'subscribe-loop']);
    expect(answersTo('dave')).toHaveLength(0);
    for (let i = 0; i < 4; i++) await post('dave', 'subscribe');
    expect(answersTo('dave').map((s) => subjectOf(s.raw)!.slice(0, 8))).toEqual([
      'Confirm:',
      'Confirm:',
      'Confirm:',
    ]);
    expect(reasonOf(asMessageId(seq.toString(16).padStart(32, '0')))).toBe('subscribe-loop');
    now += 3_600_000; // an hour later the sender is answered again
    await post('dave', 'subscribe');
    expect(answersTo('dave')).toHaveLength(4);
  });

  it('a post past the size limit is refused with an answer naming both sizes; nobody gets a copy', async () => {
    store.addMember({ ...people.carol, moderator: false });
    const id = await post('carol', 'big one', { body: 'x'.repeat(3000) });
    expect(reasonOf(id)).toBe('too-large');
    const [answer] = answersTo('carol');
    expect(subjectOf(answer.raw)).toBe('Not distributed: big one');
    expect(answer.raw).toMatch(/the post is \d{4} bytes, larger than this list's limit of 2000 bytes/);
    expect(sent).toHaveLength(1);
  });

  it('a member whose copies of 3 posts in a row failed over 3 days is removed; the moderators are told', async () => {
    store.addMember({ ...people.erin, moderator: false });
    const postAndFail = async (failErin: boolean) => {
      const id = await post('mod', `news ${seq}`);
      for (const c of store.copies(id)) {
        const failed = c.subscriber === people.erin.fingerprint && failErin;
        await service.status(
          failed
            ? { kind: 'failed', id: c.id, to: c.subscriber, at: new Date(now), reason: 'no path' }
            : { kind: 'delivered', id: c.id, to: c.subscriber, at: new Date(now) },
        );
      }
    };
    // Three failures within two hours: one outage, not a bouncing member.
    for (let i = 0; i < 3; i++) {
      await postAndFail(true);
      now += 3_600_000;
    }
    expect(store.member(people.erin.fingerprint)?.failures).toBe(3);
    await postAndFail(false); // a delivered copy starts the count again
    expect(store.member(people.erin.fingerprint)?.failures).toBe(0);
    for (let i = 0; i < 3; i++) {
      await postAndFail(true);
      if (i < 2) now += BOUNCE_SPAN_MS / 2;
    }
    expect(store.member(people.erin.fingerprint)).toBeUndefined();
    expect(logged).toContainEqual(
      expect.objectContaining({ msg: 'list: a bouncing member removed', failures: 3 }),
    );
    await service.idle();
    expect(answersTo('mod').some((s) => /^Subject: Removed from dev: E+ \(bouncing\)\r$/m.test(s.raw))).toBe(
      true,
    );
    const later = await post('mod', 'after removal');
    expect(store.copies(later).map((c) => c.subscriber)).toEqual([people.mod.fingerprint]);
  });
});

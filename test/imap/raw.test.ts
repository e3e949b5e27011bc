import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { PASS, USER, rawSession, sampleMessage, startHarness, type Harness } from './harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

describe('scripted IMAP sessions', () => {
  test('login, select, fetch, store, search, expunge', async () => {
    for (let i = 1; i <= 3; i++) await h.store.deliver({ raw: sampleMessage(i) });
    const s = await rawSession(h.port);
    expect(s.greeting).toMatch(/^\* OK \[CAPABILITY IMAP4rev1 .*STARTTLS/);
    expect((await s.send(`LOGIN "${USER}" "${PASS}"`)).at(-1)).toMatch(/^T1 OK/);
    const sel = await s.send('SELECT INBOX');
    expect(sel).toContain('* 3 EXISTS');
    expect(sel.some((l) => /UIDVALIDITY \d+/.test(l))).toBe(true);
    const f = await s.send('FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (Subject)])');
    expect(f.join('\n')).toContain('Subject: Test message 2');
    const st = await s.send('STORE 2 +FLAGS (\\Deleted)');
    expect(st[0]).toBe('* 2 FETCH (FLAGS (\\Deleted))');
    const se = await s.send('SEARCH DELETED');
    expect(se[0]).toBe('* SEARCH 2');
    const us = await s.send('UID SEARCH SUBJECT "message 3"');
    expect(us[0]).toBe('* SEARCH 3');
    const ex = await s.send('EXPUNGE');
    expect(ex[0]).toBe('* 2 EXPUNGE');
    const bad = await s.send('FETCH 1 (BODY[');
    expect(bad.at(-1)).toMatch(/^T\d+ BAD/);
    const after = await s.send('NOOP');
    expect(after.at(-1)).toMatch(/OK/);
    await s.send('LOGOUT');
    s.close();
  });
});

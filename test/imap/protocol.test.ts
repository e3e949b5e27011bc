import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { writtenDay } from '../../gateway/imap/search.ts';
import { PASS, USER, rawSession, startHarness, type Harness } from './harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

type Session = Awaited<ReturnType<typeof rawSession>>;

async function login(mailbox?: string): Promise<Session> {
  const s = await rawSession(h.port);
  expect((await s.send(`LOGIN "${USER}" "${PASS}"`)).at(-1)).toMatch(/^T1 OK /);
  if (mailbox) expect((await s.send(`SELECT ${mailbox}`)).at(-1)).toMatch(/ OK \[READ-WRITE\]/);
  return s;
}

function message(subject: string, date: string, body = 'hello'): Buffer {
  return Buffer.from(`From: bob@example.net\r\nSubject: ${subject}\r\nDate: ${date}\r\n\r\n${body}\r\n`);
}

describe('SEARCH SENT* compares the date written in the Date header', () => {
  test('23:30 -0500 on 2 March is 3 March in UTC, but SENTON 2-Mar-2026 finds it', async () => {
    h.store.createMailbox('Dates');
    await h.store.deliver({ mailbox: 'Dates', raw: message('late', 'Mon, 2 Mar 2026 23:30 -0500') });
    await h.store.deliver({ mailbox: 'Dates', raw: message('early', 'Tue, 3 Mar 2026 00:30 +0100') });
    await h.store.deliver({ mailbox: 'Dates', raw: message('old', '1 Mar 26 12:00:00 GMT') });
    const s = await login('Dates');
    expect(await s.send('SEARCH SENTON 2-Mar-2026')).toEqual(['* SEARCH 1', 'T3 OK SEARCH completed']);
    expect(await s.send('SEARCH SENTON 3-Mar-2026')).toEqual(['* SEARCH 2', 'T4 OK SEARCH completed']);
    expect(await s.send('SEARCH SENTBEFORE 3-Mar-2026')).toEqual(['* SEARCH 1 3', 'T5 OK SEARCH completed']);
    expect(await s.send('SEARCH SENTSINCE 2-Mar-2026')).toEqual(['* SEARCH 1 2', 'T6 OK SEARCH completed']);
    s.close();
  });

  test('writtenDay', () => {
    expect(writtenDay('Mon, 2 Mar 2026 23:30 -0500')).toBe(Date.UTC(2026, 2, 2));
    expect(writtenDay('tue, 03 mar 2026 00:30:00 +0100 (CET)')).toBe(Date.UTC(2026, 2, 3));
    expect(writtenDay('1 Mar 99 12:00 GMT')).toBe(Date.UTC(1999, 2, 1));
    expect(writtenDay('nonsense')).toBeNull();
  });
});

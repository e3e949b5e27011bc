import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { writtenDay } from '../../gateway/imap/search.ts';
import { PASS, USER, capturingLogger, rawSession, startHarness, type Harness } from './harness.ts';

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

describe('UTF8=ACCEPT, LIST-EXTENDED options, MOVE into the same mailbox', () => {
  test('UTF8=ACCEPT is advertised and honoured: UTF-8 names, APPEND UTF8 (~{n}), no CHARSET', async () => {
    const s = await rawSession(h.port);
    expect(s.greeting).toContain(' UTF8=ACCEPT ');
    await s.send(`LOGIN "${USER}" "${PASS}"`);
    // Before ENABLE: modified UTF-7 both ways.
    expect(await s.send('CREATE "Caf&AOk-"')).toEqual(['T2 OK CREATE completed']);
    expect(await s.send('LIST "" "Caf*"')).toEqual([
      '* LIST (\\HasNoChildren) "/" "Caf&AOk-"',
      'T3 OK LIST completed',
    ]);
    expect(await s.send('ENABLE UTF8=ACCEPT')).toEqual(['* ENABLED UTF8=ACCEPT', 'T4 OK ENABLE completed']);
    const cafe = Buffer.from('Café', 'utf8').toString('latin1');
    expect(await s.sendText('LIST "" "Caf*"')).toBe(
      `* LIST (\\HasNoChildren) "/" {5}\r\n${cafe}\r\nT5 OK LIST completed\r\n`,
    );
    const msg = Buffer.from('From: a@example.org\r\nSubject: über\r\n\r\nbody\r\n').toString('latin1');
    const r = await s.send(`APPEND {5+}\r\n${cafe} UTF8 (~{${msg.length}+}\r\n${msg})`);
    expect(r.at(-1)).toMatch(/^T6 OK \[APPENDUID \d+ 1\] APPEND completed$/);
    expect((await s.send(`SELECT {5+}\r\n${cafe}`)).at(-1)).toMatch(/^T7 OK \[READ-WRITE\]/);
    expect(await s.send('SEARCH CHARSET UTF-8 ALL')).toEqual(['T8 BAD no CHARSET after ENABLE UTF8=ACCEPT']);
    const uber = Buffer.from('über').toString('latin1');
    expect(await s.send(`SEARCH SUBJECT ${uber}`)).toEqual(['* SEARCH 1', 'T9 OK SEARCH completed']);
    s.close();
  });

  test('LIST: unknown selection or return options are BAD; RECURSIVEMATCH gives CHILDINFO', async () => {
    const s = await login();
    expect(await s.send('LIST (FOO) "" "*"')).toEqual(['T2 BAD unknown LIST selection option FOO']);
    expect(await s.send('LIST (RECURSIVEMATCH) "" "*"')).toEqual([
      'T3 BAD RECURSIVEMATCH needs another selection option',
    ]);
    expect(await s.send('LIST "" "*" RETURN (BOGUS)')).toEqual(['T4 BAD unknown LIST return option BOGUS']);
    await s.send('CREATE Parent/Child');
    expect(await s.send('UNSUBSCRIBE Parent')).toEqual(['T6 OK UNSUBSCRIBE completed']);
    expect(await s.send('LIST (SUBSCRIBED) "" "Par%"')).toEqual(['T7 OK LIST completed']);
    expect(await s.send('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Par%"')).toEqual([
      '* LIST (\\HasChildren) "/" "Parent" ("CHILDINFO" ("SUBSCRIBED"))',
      'T8 OK LIST completed',
    ]);
    expect(await s.send('LIST (SUBSCRIBED REMOTE) "" "Parent*"')).toEqual([
      '* LIST (\\HasNoChildren \\Subscribed) "/" "Parent/Child"',
      'T9 OK LIST completed',
    ]);
    s.close();
  });

  test('MOVE into the selected mailbox is NO [CANNOT]; COPY there duplicates', async () => {
    h.store.createMailbox('Same');
    await h.store.deliver({ mailbox: 'Same', raw: message('one', 'Mon, 2 Mar 2026 10:00 +0000') });
    const s = await login('Same');
    const uv = h.store.mailbox('Same').uidValidity;
    expect(await s.send('MOVE 1 Same')).toEqual(['T3 NO [CANNOT] the messages are already in this mailbox']);
    expect(await s.send('UID MOVE 1 Same')).toEqual([
      'T4 NO [CANNOT] the messages are already in this mailbox',
    ]);
    expect(await s.send('NOOP')).toEqual(['T5 OK NOOP completed']);
    expect(await s.send('COPY 1 Same')).toEqual(['* 2 EXISTS', `T6 OK [COPYUID ${uv} 1 2] COPY completed`]);
    s.close();
  });
});

describe('wrong passwords', () => {
  test('each failure from an address waits longer, is logged, and parallel guesses queue', async () => {
    const { log, logs } = capturingLogger();
    const a = await startHarness({
      log,
      auth: { delayPerFailureMs: 100, maxDelayMs: 300, maxConcurrentPerRemote: 2 },
    });
    try {
      const s = await rawSession(a.port);
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        expect(await s.send(`LOGIN "${USER}" "guess-${i}"`)).toEqual([
          `T${i + 1} NO [AUTHENTICATIONFAILED] invalid credentials`,
        ]);
        times.push(Date.now() - started);
      }
      // 100 ms per recent failure from 127.0.0.1: about 100, 200, 300 ms.
      expect(times[0]).toBeGreaterThanOrEqual(90);
      expect(times[1]).toBeGreaterThanOrEqual(190);
      expect(times[2]).toBeGreaterThanOrEqual(290);
      expect(times[2]).toBeGreaterThan(times[0]! * 2);
      const warnings = logs.filter((l) => l.msg === 'authentication failed');
      expect(warnings).toHaveLength(3);
      expect(warnings[2]).toMatchObject({ protocol: 'imap', remote: '127.0.0.1', user: USER, failures: 3 });
      expect(JSON.stringify(logs)).not.toContain('guess-');

      // Six guesses on six connections at once: two run at a time, 300 ms each, so about 900 ms
      // (all six would end after ~300 ms if they waited in parallel).
      const many = await Promise.all(Array.from({ length: 6 }, () => rawSession(a.port)));
      const started = Date.now();
      const answers = await Promise.all(many.map((c, i) => c.send(`LOGIN "${USER}" "again-${i}"`)));
      const elapsed = Date.now() - started;
      for (const r of answers) expect(r).toEqual(['T1 NO [AUTHENTICATIONFAILED] invalid credentials']);
      expect(elapsed).toBeGreaterThanOrEqual(850);
      expect(logs.filter((l) => l.msg === 'authentication failed')).toHaveLength(9);
      expect((await s.send(`LOGIN "${USER}" "${PASS}"`)).at(-1)).toMatch(/^T4 OK /);
      for (const c of [s, ...many]) c.close();
    } finally {
      await a.close();
    }
  });
});

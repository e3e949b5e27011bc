import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writtenDay } from '../../gateway/imap/search.ts';
import { HANG_MS } from '../helpers/hang.ts';
import { until } from '../helpers/until.ts';
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
      // 100 ms more per recent failure from 127.0.0.1, as logged; each answer waited at least that
      // (lower bounds only: a loaded machine makes every answer later, never earlier)
      const warnings = logs.filter((l) => l.msg === 'authentication failed');
      expect(warnings.map((w) => w.delayMs)).toEqual([100, 200, 300]);
      expect(times[0]).toBeGreaterThanOrEqual(90);
      expect(times[1]).toBeGreaterThanOrEqual(190);
      expect(times[2]).toBeGreaterThanOrEqual(290);
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

describe('scripted sessions with exact responses', () => {
  test('a literal past 256 KiB spills to disk (synchronising and LITERAL+), and the file goes', async () => {
    h.store.createMailbox('Spill');
    const s = await login();
    const body = 'y'.repeat(76) + '\r\n';
    const msg = Buffer.from(`Subject: spill\r\n\r\n${body.repeat(4000)}`, 'latin1'); // 312,018 bytes
    expect(msg.length).toBeGreaterThan(256 * 1024);
    for (const plus of ['', '+']) {
      s.write(`A${plus ? 'P' : 'S'} APPEND Spill {${msg.length}${plus}}\r\n`);
      if (!plus) expect(await s.readUntil((t) => t.endsWith('\r\n'))).toBe('+ Ready for literal data\r\n');
      s.write(msg.subarray(0, 300_000));
      // Polled (another side of a socket): bounded only as a hang, not by a second of real time.
      const files = await until(
        () => {
          const found = readdirSync(h.spool).filter((f) => f.startsWith('lit-'));
          return found.length > 0 ? found : undefined;
        },
        'the literal spilled to the spool',
        HANG_MS,
        10,
      );
      expect(files).toHaveLength(1);
      await until(
        () => (statSync(join(h.spool, files[0]!)).size >= 300_000 ? true : undefined),
        'the first 300,000 bytes in the spooled literal',
        HANG_MS,
        10,
      );
      expect(statSync(join(h.spool, files[0]!)).size).toBe(300_000);
      s.write(Buffer.concat([msg.subarray(300_000), Buffer.from('\r\n')]));
      const done = await s.readUntil((t) => /A[SP] OK[^\r\n]*\r\n/.test(t));
      expect(done).toMatch(/^A[SP] OK \[APPENDUID \d+ [12]\] APPEND completed\r\n$/);
      expect(readdirSync(h.spool)).toEqual([]);
    }
    expect((await s.send('STATUS Spill (MESSAGES SIZE)'))[0]).toBe(
      `* STATUS "Spill" (MESSAGES 2 SIZE ${2 * msg.length})`,
    );
    s.close();
  });

  test('a literal a crash left in the spool is gone at the next start; other files there are kept', async () => {
    writeFileSync(join(h.spool, 'lit-0123456789abcdef'), 'half of a mail an APPEND was receiving');
    writeFileSync(join(h.spool, 'keep-me'), 'not a literal');
    await h.restart();
    try {
      expect(readdirSync(h.spool)).toEqual(['keep-me']);
    } finally {
      rmSync(join(h.spool, 'keep-me'));
    }
    const s = await login();
    expect((await s.send('NOOP')).at(-1)).toMatch(/^T\d+ OK/);
    s.close();
  });

  test('LOGIN and AUTHENTICATE are refused without TLS', async () => {
    const strict = await startHarness({ allowInsecureAuth: false });
    try {
      const s = await rawSession(strict.port);
      expect(s.greeting).toMatch(/ STARTTLS LOGINDISABLED\] /);
      expect(s.greeting).not.toContain('AUTH=PLAIN');
      expect(await s.send(`LOGIN "${USER}" "${PASS}"`)).toEqual([
        'T1 NO [PRIVACYREQUIRED] use STARTTLS first',
      ]);
      const plain = Buffer.from(`\0${USER}\0${PASS}`).toString('base64');
      expect(await s.send(`AUTHENTICATE PLAIN ${plain}`)).toEqual([
        'T2 NO [PRIVACYREQUIRED] use STARTTLS first',
      ]);
      expect(await s.send('SELECT INBOX')).toEqual(['T3 BAD SELECT is not allowed in the notauth state']);
      s.close();
    } finally {
      await strict.close();
    }
  });

  test('CONDSTORE: FETCH MODSEQ, +FLAGS.SILENT, STORE UNCHANGEDSINCE, FETCH CHANGEDSINCE, SEARCH MODSEQ', async () => {
    h.store.createMailbox('Cond');
    for (let i = 1; i <= 3; i++)
      await h.store.deliver({ mailbox: 'Cond', raw: message(`c${i}`, 'Mon, 2 Mar 2026 10:00 +0000') });
    // Without CONDSTORE, .SILENT says nothing.
    const quiet = await login('Cond');
    expect(await quiet.send('STORE 3 +FLAGS.SILENT (\\Answered)')).toEqual(['T3 OK STORE completed']);
    expect(await quiet.send('STORE 3 -FLAGS (\\Answered)')).toEqual([
      '* 3 FETCH (FLAGS ())',
      'T4 OK STORE completed',
    ]);
    quiet.close();
    // A new mailbox starts at MODSEQ 1; the three deliveries got 2, 3, 4; the two STOREs 5, 6.
    const s = await login();
    expect((await s.send('SELECT Cond (CONDSTORE)')).filter((l) => l.includes('MODSEQ'))).toEqual([
      '* OK [HIGHESTMODSEQ 6] highest',
    ]);
    expect(await s.send('FETCH 1:* (MODSEQ)')).toEqual([
      '* 1 FETCH (MODSEQ (2))',
      '* 2 FETCH (MODSEQ (3))',
      '* 3 FETCH (MODSEQ (6))',
      'T3 OK FETCH completed',
    ]);
    expect(await s.send('STORE 1 +FLAGS.SILENT (\\Seen)')).toEqual([
      '* 1 FETCH (MODSEQ (7))',
      'T4 OK STORE completed',
    ]);
    expect(await s.send('STORE 1:2 (UNCHANGEDSINCE 6) +FLAGS (\\Flagged)')).toEqual([
      '* 2 FETCH (FLAGS (\\Flagged) MODSEQ (8))',
      'T5 OK [MODIFIED 1] conditional STORE failed for some messages',
    ]);
    expect(await s.send('UID STORE 1 (UNCHANGEDSINCE 7) +FLAGS.SILENT ($Label1)')).toEqual([
      '* 1 FETCH (UID 1 MODSEQ (9))',
      'T6 OK STORE completed',
    ]);
    expect(await s.send('FETCH 1:* (FLAGS) (CHANGEDSINCE 7)')).toEqual([
      '* 1 FETCH (FLAGS (\\Seen $Label1) MODSEQ (9))',
      '* 2 FETCH (FLAGS (\\Flagged) MODSEQ (8))',
      'T7 OK FETCH completed',
    ]);
    expect(await s.send('UID FETCH 1:* (FLAGS) (CHANGEDSINCE 8)')).toEqual([
      '* 1 FETCH (UID 1 FLAGS (\\Seen $Label1) MODSEQ (9))',
      'T8 OK FETCH completed',
    ]);
    expect(await s.send('SEARCH MODSEQ 8')).toEqual(['* SEARCH 1 2 (MODSEQ 9)', 'T9 OK SEARCH completed']);
    expect(await s.send('SEARCH MODSEQ 10')).toEqual(['* SEARCH', 'T10 OK SEARCH completed']);
    s.close();
  });

  test('partial BODY[]<n.m>, HEADER.FIELDS.NOT, sections', async () => {
    h.store.createMailbox('Parts');
    const raw = Buffer.from(
      'From: bob@example.net\r\nSubject: parts\r\nDate: Mon, 2 Mar 2026 10:00 +0000\r\nX-Extra: yes\r\n\r\n0123456789abcdef\r\n',
    );
    await h.store.deliver({ mailbox: 'Parts', raw });
    const s = await login('Parts');
    expect(await s.sendText('FETCH 1 (BODY.PEEK[]<0.10>)')).toBe(
      '* 1 FETCH (BODY[]<0> {10}\r\nFrom: bob@)\r\nT3 OK FETCH completed\r\n',
    );
    const at = raw.indexOf('0123');
    expect(await s.sendText(`FETCH 1 (BODY.PEEK[]<${at + 10}.100>)`)).toBe(
      `* 1 FETCH (BODY[]<${at + 10}> {8}\r\nabcdef\r\n)\r\nT4 OK FETCH completed\r\n`,
    );
    expect(await s.sendText('FETCH 1 (BODY.PEEK[TEXT]<4.6>)')).toBe(
      '* 1 FETCH (BODY[TEXT]<4> {6}\r\n456789)\r\nT5 OK FETCH completed\r\n',
    );
    expect(await s.sendText('FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Subject Date)])')).toBe(
      '* 1 FETCH (BODY[HEADER.FIELDS.NOT (Subject Date)] {39}\r\nFrom: bob@example.net\r\nX-Extra: yes\r\n\r\n)\r\nT6 OK FETCH completed\r\n',
    );
    // PEEK left \Seen alone; BODY[] sets it and says so.
    expect(await s.sendText('FETCH 1 (BODY[TEXT])')).toBe(
      '* 1 FETCH (BODY[TEXT] {18}\r\n0123456789abcdef\r\n FLAGS (\\Seen))\r\nT7 OK FETCH completed\r\n',
    );
    s.close();
  });

  test('LIST-STATUS, LIST-EXTENDED (SUBSCRIBED, SPECIAL-USE), LSUB, SUBSCRIBE, UNSUBSCRIBE', async () => {
    h.store.createMailbox('Listed');
    await h.store.deliver({ mailbox: 'Listed', raw: message('l', 'Mon, 2 Mar 2026 10:00 +0000') });
    const s = await login();
    const uv = h.store.mailbox('Listed').uidValidity;
    expect(await s.send('LIST "" "Listed" RETURN (STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN))')).toEqual([
      '* LIST (\\HasNoChildren) "/" "Listed"',
      `* STATUS "Listed" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ${uv} UNSEEN 1)`,
      'T2 OK LIST completed',
    ]);
    expect(await s.send('LIST (SPECIAL-USE) "" "*"')).toEqual([
      '* LIST (\\HasNoChildren \\Archive) "/" "Archive"',
      '* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
      '* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
      '* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
      '* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
      'T3 OK LIST completed',
    ]);
    expect(await s.send('LIST "" "T%" RETURN (SPECIAL-USE SUBSCRIBED)')).toEqual([
      '* LIST (\\HasNoChildren \\Trash \\Subscribed) "/" "Trash"',
      'T4 OK LIST completed',
    ]);
    expect(await s.send('UNSUBSCRIBE Listed')).toEqual(['T5 OK UNSUBSCRIBE completed']);
    expect(await s.send('LIST (SUBSCRIBED) "" "Listed"')).toEqual(['T6 OK LIST completed']);
    expect(await s.send('LSUB "" "Listed"')).toEqual(['T7 OK LSUB completed']);
    expect(await s.send('LIST "" "Listed" RETURN (SUBSCRIBED)')).toEqual([
      '* LIST (\\HasNoChildren) "/" "Listed"',
      'T8 OK LIST completed',
    ]);
    expect(await s.send('SUBSCRIBE Listed')).toEqual(['T9 OK SUBSCRIBE completed']);
    expect(await s.send('LSUB "" "List%"')).toEqual([
      '* LSUB (\\HasNoChildren) "/" "Listed"',
      'T10 OK LSUB completed',
    ]);
    expect(await s.send('LIST (SUBSCRIBED) "" "Listed"')).toEqual([
      '* LIST (\\HasNoChildren \\Subscribed) "/" "Listed"',
      'T11 OK LIST completed',
    ]);
    expect(await s.send('SUBSCRIBE Nowhere')).toEqual(['T12 NO [NONEXISTENT] no mailbox named Nowhere']);
    s.close();
  });

  test('ID, NAMESPACE, ENABLE, CHECK, UNSELECT, CLOSE, UID EXPUNGE', async () => {
    h.store.createMailbox('Life');
    for (let i = 1; i <= 4; i++)
      await h.store.deliver({ mailbox: 'Life', raw: message(`m${i}`, 'Mon, 2 Mar 2026 10:00 +0000') });
    const s = await rawSession(h.port);
    expect(await s.send('ID ("name" "test" "version" "1")')).toEqual([
      '* ID ("name" "Kith" "vendor" "Kith")',
      'T1 OK ID completed',
    ]);
    expect(await s.send('NAMESPACE')).toEqual(['T2 BAD NAMESPACE is not allowed in the notauth state']);
    await s.send(`LOGIN "${USER}" "${PASS}"`);
    expect(await s.send('NAMESPACE')).toEqual([
      '* NAMESPACE (("" "/")) NIL NIL',
      'T4 OK NAMESPACE completed',
    ]);
    expect(await s.send('ENABLE CONDSTORE X-UNKNOWN')).toEqual([
      '* ENABLED CONDSTORE',
      'T5 OK ENABLE completed',
    ]);
    expect(await s.send('ENABLE CONDSTORE')).toEqual(['* ENABLED', 'T6 OK ENABLE completed']);
    expect(await s.send('CHECK')).toEqual(['T7 BAD CHECK is not allowed in the auth state']);
    await s.send('SELECT Life');
    expect(await s.send('CHECK')).toEqual(['T9 OK NOOP completed']);
    // UID EXPUNGE removes only the UIDs named, even if others are \Deleted.
    await s.send('STORE 1:3 +FLAGS.SILENT (\\Deleted)');
    expect(await s.send('UID EXPUNGE 2:3')).toEqual([
      '* 2 EXPUNGE',
      '* 2 EXPUNGE',
      'T11 OK EXPUNGE completed',
    ]);
    expect(await s.send('UID FETCH 1:* (FLAGS)')).toEqual([
      '* 1 FETCH (UID 1 FLAGS (\\Deleted))',
      '* 2 FETCH (UID 4 FLAGS ())',
      'T12 OK FETCH completed',
    ]);
    // UNSELECT leaves \Deleted messages; CLOSE expunges them, silently.
    expect(await s.send('UNSELECT')).toEqual(['T13 OK UNSELECT completed']);
    expect(await s.send('UNSELECT')).toEqual(['T14 BAD UNSELECT is not allowed in the auth state']);
    expect((await s.send('STATUS Life (MESSAGES DELETED)'))[0]).toBe(
      '* STATUS "Life" (MESSAGES 2 DELETED 1)',
    );
    await s.send('SELECT Life');
    expect(await s.send('CLOSE')).toEqual(['T17 OK CLOSE completed']);
    expect((await s.send('STATUS Life (MESSAGES DELETED)'))[0]).toBe(
      '* STATUS "Life" (MESSAGES 1 DELETED 0)',
    );
    // EXAMINE then CLOSE expunges nothing.
    await s.send('SELECT Life');
    await s.send('STORE 1 +FLAGS.SILENT (\\Deleted)');
    await s.send('EXAMINE Life');
    expect(await s.send('CLOSE')).toEqual(['T22 OK CLOSE completed']);
    expect((await s.send('STATUS Life (MESSAGES)'))[0]).toBe('* STATUS "Life" (MESSAGES 1)');
    s.close();
  });

  test('SEARCH: date keys, OR/NOT, LARGER/SMALLER, HEADER, sequence sets', async () => {
    h.store.createMailbox('Find');
    const day = (d: number): Date => new Date(Date.UTC(2026, 1, d, 12));
    await h.store.deliver({
      mailbox: 'Find',
      raw: Buffer.from('From: bob@example.net\r\nSubject: alpha\r\nX-Tag: red\r\n\r\nshort\r\n'),
      internalDate: day(1),
    });
    await h.store.deliver({
      mailbox: 'Find',
      raw: Buffer.from(
        `From: carol@example.com\r\nSubject: beta\r\nX-Tag: blue\r\n\r\n${'x'.repeat(2000)}\r\n`,
      ),
      internalDate: day(2),
      flags: ['\\Seen'],
    });
    await h.store.deliver({
      mailbox: 'Find',
      raw: Buffer.from(`From: bob@example.net\r\nSubject: gamma\r\n\r\n${'medium '.repeat(50)}\r\n`),
      internalDate: day(3),
    });
    const s = await login('Find');
    const search = async (keys: string): Promise<string> => (await s.send(`SEARCH ${keys}`))[0]!;
    expect(await search('SINCE 2-Feb-2026')).toBe('* SEARCH 2 3');
    expect(await search('BEFORE 2-Feb-2026')).toBe('* SEARCH 1');
    expect(await search('ON 2-Feb-2026')).toBe('* SEARCH 2');
    expect(await search('SINCE 4-Feb-2026')).toBe('* SEARCH');
    expect(await search('OR SUBJECT alpha SUBJECT gamma')).toBe('* SEARCH 1 3');
    expect(await search('NOT FROM bob')).toBe('* SEARCH 2');
    expect(await search('OR SEEN NOT FROM carol')).toBe('* SEARCH 1 2 3');
    expect(await search('NOT (SEEN)')).toBe('* SEARCH 1 3');
    expect(await search('LARGER 1000')).toBe('* SEARCH 2');
    expect(await search('SMALLER 100')).toBe('* SEARCH 1');
    expect(await search('LARGER 100 SMALLER 1000')).toBe('* SEARCH 3');
    expect(await search('HEADER X-Tag red')).toBe('* SEARCH 1');
    expect(await search('HEADER X-Tag ""')).toBe('* SEARCH 1 2');
    expect(await search('2:*')).toBe('* SEARCH 2 3');
    expect(await search('1,3')).toBe('* SEARCH 1 3');
    expect(await search('*')).toBe('* SEARCH 3');
    expect(await search('3:2 FROM bob')).toBe('* SEARCH 3');
    expect((await s.send('UID SEARCH UID 2:3 NOT SUBJECT beta'))[0]).toBe('* SEARCH 3');
    expect(await s.send('SEARCH 1:x')).toEqual(['T21 BAD unknown search key 1:X']);
    expect(await s.send('SEARCH SINCE 2-Foo-2026')).toEqual(['T22 BAD SINCE needs a date']);
    s.close();
  });

  test('a second session hears EXISTS, FETCH FLAGS and EXPUNGE on NOOP, outside IDLE', async () => {
    h.store.createMailbox('Shared');
    await h.store.deliver({ mailbox: 'Shared', raw: message('s1', 'Mon, 2 Mar 2026 10:00 +0000') });
    const a = await login('Shared');
    const b = await login('Shared');
    const fromA = 'Subject: from a\r\n\r\nhello a\r\n';
    await a.send(`APPEND Shared {${fromA.length}+}\r\n${fromA}`);
    expect(await b.send('NOOP')).toEqual(['* 2 EXISTS', 'T3 OK NOOP completed']);
    await a.send('STORE 1 +FLAGS (\\Flagged)');
    expect(await b.send('NOOP')).toEqual(['* 1 FETCH (UID 1 FLAGS (\\Flagged))', 'T4 OK NOOP completed']);
    await a.send('STORE 1 +FLAGS.SILENT (\\Deleted)');
    await a.send('EXPUNGE');
    expect(await b.send('NOOP')).toEqual([
      '* 1 FETCH (UID 1 FLAGS (\\Flagged \\Deleted))',
      '* 1 EXPUNGE',
      'T5 OK NOOP completed',
    ]);
    await h.store.deliver({ mailbox: 'Shared', raw: message('s3', 'Mon, 2 Mar 2026 10:00 +0000') });
    expect(await b.send('NOOP')).toEqual(['* 2 EXISTS', 'T6 OK NOOP completed']);
    a.close();
    b.close();
  });
});

describe('QRESYNC (RFC 7162)', () => {
  test('ENABLE, VANISHED instead of EXPUNGE, UID FETCH (CHANGEDSINCE VANISHED), SELECT (QRESYNC ...)', async () => {
    h.store.createMailbox('Resync');
    for (let i = 1; i <= 5; i++)
      await h.store.deliver({ mailbox: 'Resync', raw: message(`r${i}`, 'Mon, 2 Mar 2026 10:00 +0000') });
    const uv = h.store.mailbox('Resync').uidValidity;
    const a = await login();
    expect(await a.send('ENABLE QRESYNC')).toEqual(['* ENABLED QRESYNC', 'T2 OK ENABLE completed']);
    expect((await a.send('SELECT Resync')).filter((l) => /MODSEQ|VANISHED|FETCH/.test(l))).toEqual([
      '* OK [HIGHESTMODSEQ 6] highest',
    ]);
    expect(await a.send('STORE 2 +FLAGS (\\Seen)')).toEqual([
      '* 2 FETCH (FLAGS (\\Seen) MODSEQ (7))',
      'T4 OK STORE completed',
    ]);
    await a.send('STORE 3:4 +FLAGS.SILENT (\\Deleted)');
    expect(await a.send('EXPUNGE')).toEqual(['* VANISHED 3:4', 'T6 OK EXPUNGE completed']);
    expect(await a.send('UID FETCH 1:* (FLAGS) (CHANGEDSINCE 6 VANISHED)')).toEqual([
      '* VANISHED (EARLIER) 3:4',
      '* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (7))',
      'T7 OK FETCH completed',
    ]);
    expect(await a.send('UID FETCH 4:5 (FLAGS) (CHANGEDSINCE 8 VANISHED)')).toEqual([
      '* VANISHED (EARLIER) 4',
      'T8 OK FETCH completed',
    ]);
    expect(await a.send('FETCH 1:* (FLAGS) (CHANGEDSINCE 6 VANISHED)')).toEqual([
      'T9 BAD VANISHED needs UID FETCH and QRESYNC',
    ]);

    const b = await login();
    expect(await b.send(`SELECT Resync (QRESYNC (${uv} 6))`)).toEqual([
      'T2 BAD QRESYNC needs ENABLE QRESYNC first',
    ]);
    expect(await b.send('UID FETCH 1:* (FLAGS) (CHANGEDSINCE 6 VANISHED)')).toEqual([
      'T3 BAD UID FETCH is not allowed in the auth state',
    ]);
    await b.send('ENABLE QRESYNC');
    const resync = await b.send(`SELECT Resync (QRESYNC (${uv} 6 1:5))`);
    expect(resync.slice(-3)).toEqual([
      '* VANISHED (EARLIER) 3:4',
      '* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (7))',
      'T5 OK [READ-WRITE] SELECT completed',
    ]);
    expect(resync).toContain('* 3 EXISTS');
    expect(resync).toContain('* OK [HIGHESTMODSEQ 9] highest');
    // Known UIDs limit what is reported; a changed UIDVALIDITY reports nothing.
    const limited = await b.send(`SELECT Resync (QRESYNC (${uv} 6 1:3))`);
    expect(limited[0]).toBe('* OK [CLOSED] previous mailbox closed');
    expect(limited.slice(-3)).toEqual([
      '* VANISHED (EARLIER) 3',
      '* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (7))',
      'T6 OK [READ-WRITE] SELECT completed',
    ]);
    const other = await b.send(`SELECT Resync (QRESYNC (${uv + 1} 6))`);
    expect(other.filter((l) => /VANISHED|FETCH/.test(l))).toEqual([]);

    // Another session's expunge reaches b as VANISHED on NOOP.
    await a.send('STORE 3 +FLAGS.SILENT (\\Deleted)');
    await a.send('EXPUNGE');
    expect(await b.send('NOOP')).toEqual([
      '* 3 FETCH (UID 5 FLAGS (\\Deleted) MODSEQ (10))',
      '* VANISHED 5',
      'T8 OK NOOP completed',
    ]);
    a.close();
    b.close();
  });
});

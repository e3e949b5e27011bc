import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PASS, USER, rawSession, startHarness, type Harness } from './harness.ts';

// Expected values are written by hand from RFC 3501 7.4.2 (sizes and line counts counted on the
// fixture bytes, CRLF line ends; the CRLF before a boundary belongs to the boundary).
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

const EXPECTED: Record<
  string,
  { envelope: string; bodystructure: string; sections?: Record<string, string> }
> = {
  'nested.eml': {
    envelope:
      '("Tue, 3 Mar 2026 12:00:00 +0100" "nested" (("Doe, John" NIL "john" "example.com")) (("Doe, John" NIL "john" "example.com")) (("Doe, John" NIL "john" "example.com")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL NIL "<nested@example.com>")',
    bodystructure:
      '((("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 1 NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 16 1 NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "inner") NIL NIL NIL)("APPLICATION" "PDF" ("NAME" "a b.pdf") NIL NIL "BASE64" 8 NIL ("ATTACHMENT" ("FILENAME" "a b.pdf")) NIL NIL) "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)',
    sections: {
      '1.1': 'plain',
      '1.2': '<p>caf=C3=A9</p>',
      '1.2.MIME':
        'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n',
      '2': 'JVBERi0=',
      'HEADER.FIELDS (SUBJECT MESSAGE-ID)': 'Subject: nested\r\nMessage-ID: <nested@example.com>\r\n\r\n',
      '3': '',
    },
  },
  'forward.eml': {
    envelope:
      '(NIL "Fwd: hi" ((NIL NIL "alice" "example.org")) ((NIL NIL "alice" "example.org")) ((NIL NIL "alice" "example.org")) (("Bob" NIL "bob" "example.net")) NIL NIL NIL NIL)',
    bodystructure:
      '(("TEXT" "PLAIN" NIL NIL NIL "7BIT" 9 1 NIL NIL NIL NIL)("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 50 (NIL "hi" ((NIL NIL "carol" "example.com")) ((NIL NIL "carol" "example.com")) ((NIL NIL "carol" "example.com")) NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) 4 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "b1") NIL NIL NIL)',
    sections: {
      '1': 'see below',
      '1.MIME': 'Content-Type: text/plain\r\n\r\n',
      '2.HEADER': 'From: carol@example.com\r\nSubject: hi\r\n\r\n',
      '2.TEXT': 'inner body',
      '2.1': 'inner body',
      '2': 'From: carol@example.com\r\nSubject: hi\r\n\r\ninner body',
    },
  },
  'encoded.eml': {
    envelope:
      '(NIL "=?utf-8?B?w6lsw6h2ZQ==?= folded" (("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be")) (("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be")) (("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be")) ((' +
      Buffer.from('{6}\r\nÄrger', 'utf8').toString('latin1') +
      ' NIL "x" "example.com")(NIL NIL "y" "example.com")) ((NIL NIL "Group" NIL)(NIL NIL "a" "b.c")("q\\"uote" NIL "q" "b.c")(NIL NIL NIL NIL)) NIL NIL NIL)',
    bodystructure: '("TEXT" "PLAIN" ("CHARSET" "koi8-r") NIL NIL "8BIT" 8 1 NIL NIL ("en" "ru") NIL)',
  },
  'lf-only.eml': {
    envelope: '(NIL "bare" NIL NIL NIL NIL NIL NIL NIL NIL)',
    bodystructure:
      '("APPLICATION" "OCTET-STREAM" ("NAME*0" "long" "NAME*1" "name.bin") NIL NIL "7BIT" 5 NIL NIL NIL "http://example.com/x")',
    sections: { TEXT: 'abc\r\n', '1': 'abc\r\n' },
  },
};

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
  await h.store.createMailbox('Fixtures');
  for (const name of Object.keys(EXPECTED)) {
    await h.store.deliver({ mailbox: 'Fixtures', raw: readFileSync(join(FIXTURES, name)) });
  }
});
afterAll(async () => {
  await h.close();
});

// Pulls "NAME value" out of "* n FETCH (NAME value)" where value is a whole parenthesised item.
function item(response: string, name: string): string {
  const start = response.indexOf(`${name} `) + name.length + 1;
  let depth = 0;
  let i = start;
  for (; i < response.length; i++) {
    const c = response[i];
    if (c === '"') {
      for (i++; response[i] !== '"'; i++) if (response[i] === '\\') i++;
    } else if (c === '{') {
      const close = response.indexOf('}', i);
      i = close + 2 + Number(response.slice(i + 1, close));
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) break;
  }
  return response.slice(start, i + 1);
}

function literal(response: string, name: string): string {
  const at = response.indexOf(`${name} {`);
  if (at < 0) throw new Error(`${name} missing in ${response}`);
  const open = at + name.length + 1;
  const close = response.indexOf('}', open);
  const size = Number(response.slice(open + 1, close));
  return response.slice(close + 3, close + 3 + size);
}

describe('ENVELOPE and BODYSTRUCTURE of tricky messages', () => {
  const names = Object.keys(EXPECTED);
  test.each(names.map((n, i) => [n, i + 1] as const))('%s', async (name, uid) => {
    const s = await rawSession(h.port);
    await s.send(`LOGIN "${USER}" "${PASS}"`);
    await s.send('EXAMINE Fixtures');
    const exp = EXPECTED[name]!;
    const lines = (await s.send(`UID FETCH ${uid} (ENVELOPE BODYSTRUCTURE)`)).join('\r\n');
    expect(item(lines, 'ENVELOPE')).toBe(exp.envelope);
    expect(item(lines, 'BODYSTRUCTURE')).toBe(exp.bodystructure);
    for (const [section, want] of Object.entries(exp.sections ?? {})) {
      const r = await s.sendText(`UID FETCH ${uid} (BODY.PEEK[${section}])`);
      const got = r.includes(`BODY[${section}] ""`) ? '' : literal(r, `BODY[${section}]`);
      expect([section, got]).toEqual([section, Buffer.from(want, 'utf8').toString('latin1')]);
    }
    s.close();
  });

  test('SEARCH decodes encoded words and odd charsets', async () => {
    const s = await rawSession(h.port);
    await s.send(`LOGIN "${USER}" "${PASS}"`);
    await s.send('EXAMINE Fixtures');
    const subj = Buffer.from('élève', 'utf8').toString('latin1');
    expect(
      (await s.send(`UID SEARCH CHARSET UTF-8 SUBJECT {${Buffer.byteLength('élève')}+}\r\n${subj}`))[0],
    ).toBe('* SEARCH 3');
    const body = Buffer.from('ПРИВЕТ', 'utf8').toString('latin1');
    expect(
      (await s.send(`UID SEARCH CHARSET UTF-8 BODY {${Buffer.byteLength('ПРИВЕТ')}+}\r\n${body}`))[0],
    ).toBe('* SEARCH 3');
    expect((await s.send('UID SEARCH BODY café'))[0]).toBe('* SEARCH');
    expect((await s.send(`UID SEARCH TEXT {5+}\r\n${Buffer.from('café').toString('latin1')}`))[0]).toBe(
      '* SEARCH 1',
    );
    expect((await s.send('UID SEARCH FROM pirard'))[0]).toBe('* SEARCH 3');
    expect((await s.send('SEARCH CHARSET KOI8-R BODY x')).at(-1)).toMatch(/NO \[BADCHARSET/);
    s.close();
  });
});

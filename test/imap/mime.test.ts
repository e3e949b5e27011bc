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
  // message/rfc822 sent base64-encoded (RFC 2046 forbids it; senders do it): the embedded
  // message is the decoded body, 55 bytes; its own body "secret body\r\n" is 13 bytes, 1 line.
  // The part's size (76) and line count (1) are of the base64 text as transmitted.
  'encoded-rfc822.eml': {
    envelope:
      '(NIL "encoded forward" ((NIL NIL "alice" "example.org")) ((NIL NIL "alice" "example.org")) ((NIL NIL "alice" "example.org")) NIL NIL NIL NIL NIL)',
    bodystructure:
      '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL)("MESSAGE" "RFC822" NIL NIL NIL "BASE64" 76 (NIL "inner" ((NIL NIL "dave" "example.com")) ((NIL NIL "dave" "example.com")) ((NIL NIL "dave" "example.com")) NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 13 1 NIL NIL NIL NIL) 1 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "b2") NIL NIL NIL)',
    sections: {
      '1': 'see attached',
      '2': 'RnJvbTogZGF2ZUBleGFtcGxlLmNvbQ0KU3ViamVjdDogaW5uZXINCg0Kc2VjcmV0IGJvZHkNCg==',
      '2.HEADER': 'From: dave@example.com\r\nSubject: inner\r\n\r\n',
      '2.HEADER.FIELDS (SUBJECT)': 'Subject: inner\r\n\r\n',
      '2.TEXT': 'secret body\r\n',
      '2.1': 'secret body\r\n',
      '2.1.MIME': 'From: dave@example.com\r\nSubject: inner\r\n\r\n',
    },
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

type Sexp = string | null | Sexp[];

// Reads an IMAP response value: lists, quoted strings, literals, NIL and atoms.
function parseSexp(text: string): Sexp {
  let i = 0;
  const value = (): Sexp => {
    while (text[i] === ' ') i++;
    const c = text[i];
    if (c === '(') {
      i++;
      const out: Sexp[] = [];
      for (;;) {
        while (text[i] === ' ') i++;
        if (text[i] === ')') {
          i++;
          return out;
        }
        if (i >= text.length) throw new Error('unclosed list');
        out.push(value());
      }
    }
    if (c === '"') {
      let s = '';
      for (i++; text[i] !== '"'; i++) s += text[i] === '\\' ? text[++i] : text[i];
      i++;
      return s;
    }
    if (c === '{') {
      const close = text.indexOf('}', i);
      const n = Number(text.slice(i + 1, close));
      i = close + 3 + n;
      return text.slice(close + 3, i);
    }
    const m = /^[^ ()]+/.exec(text.slice(i))!;
    i += m[0].length;
    return m[0] === 'NIL' ? null : m[0];
  };
  return value();
}

// Checks a BODYSTRUCTURE against RFC 3501's body grammar: multiparts have at least one body and
// a subtype; MESSAGE/RFC822 has body-fields, an envelope of 10 items, a body and a line count.
function checkBody(b: Sexp, depth = 0): number {
  if (!Array.isArray(b)) throw new Error(`body is not a list: ${String(b)}`);
  if (Array.isArray(b[0])) {
    let n = 0;
    let deepest = depth;
    while (Array.isArray(b[n])) deepest = Math.max(deepest, checkBody(b[n++]!, depth + 1));
    expect(typeof b[n]).toBe('string');
    return deepest;
  }
  expect(b.length).toBeGreaterThanOrEqual(7);
  expect(b[6]).toMatch(/^\d+$/);
  const type = String(b[0]).toUpperCase();
  const subtype = String(b[1]).toUpperCase();
  if (type === 'MESSAGE' && subtype === 'RFC822') {
    expect(Array.isArray(b[7]) && b[7].length).toBe(10);
    const deepest = checkBody(b[8]!, depth + 1);
    expect(b[9]).toMatch(/^\d+$/);
    return deepest;
  }
  if (type === 'TEXT') expect(b[7]).toMatch(/^\d+$/);
  return depth;
}

describe('ENVELOPE and BODYSTRUCTURE of tricky messages', () => {
  test('every BODYSTRUCTURE follows the grammar, also past the nesting limit', async () => {
    // 45 message/rfc822 levels; the parser stops at 40 and reports the rest as a text part.
    let raw = 'Subject: core\r\n\r\ncore\r\n';
    for (let i = 0; i < 45; i++) raw = `Subject: level ${i}\r\nContent-Type: message/rfc822\r\n\r\n${raw}`;
    await h.store.createMailbox('Deep');
    await h.store.deliver({ mailbox: 'Deep', raw: Buffer.from(raw) });
    const s = await rawSession(h.port);
    await s.send(`LOGIN "${USER}" "${PASS}"`);
    await s.send('EXAMINE Deep');
    const deep = (await s.send('UID FETCH 1 (BODYSTRUCTURE BODY)')).join('\r\n');
    expect(checkBody(parseSexp(item(deep, 'BODYSTRUCTURE')))).toBe(41);
    expect(checkBody(parseSexp(item(deep, 'BODY')))).toBe(41);
    // Level 4 sits at depth 40: its body (levels 3..0, 4 x 50 bytes, and the 23-byte core; 15
    // lines) is reported as an embedded message with an empty envelope and one text part.
    expect(item(deep, 'BODYSTRUCTURE')).toContain(
      '(NIL "level 4" NIL NIL NIL NIL NIL NIL NIL NIL) ("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 223 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 223 15 NIL NIL NIL NIL) 15 NIL NIL NIL NIL)',
    );
    await s.send('EXAMINE Fixtures');
    const all = (await s.send('UID FETCH 1:* (BODYSTRUCTURE)')).join('\r\n');
    for (const chunk of all.split(/\r\n(?=\* \d+ FETCH)/).filter((c) => c.startsWith('*')))
      checkBody(parseSexp(item(chunk, 'BODYSTRUCTURE')));
    s.close();
  });

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
    // BODY compares decoded text: "café" (sent as UTF-8) is found in nested.eml's
    // quoted-printable UTF-8 HTML part (caf=C3=A9) and in a quoted-printable ISO-8859-1 body
    // (caf=E9), and in nothing whose bytes merely look alike.
    await h.store.deliver({
      mailbox: 'Fixtures',
      raw: Buffer.from(
        'Subject: latin\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nun caf=E9 noir, caf=C3=A9 faux\r\n',
      ),
    });
    await s.send('NOOP');
    const cafe = Buffer.from('café', 'utf8').toString('latin1');
    expect(await s.send(`UID SEARCH CHARSET UTF-8 BODY {5+}\r\n${cafe}`)).toEqual([
      '* SEARCH 1 6',
      expect.stringMatching(/ OK SEARCH completed$/),
    ]);
    // In the ISO-8859-1 body, =C3=A9 decodes to "Ã©", not "é": only "café noir" matched above.
    expect((await s.send(`UID SEARCH BODY {10+}\r\n${Buffer.from('café noir').toString('latin1')}`))[0]).toBe(
      '* SEARCH 6',
    );
    const mojibake = Buffer.from('cafÃ© faux', 'utf8').toString('latin1');
    expect((await s.send(`UID SEARCH BODY {${mojibake.length}+}\r\n${mojibake}`))[0]).toBe('* SEARCH 6');
    expect((await s.send(`UID SEARCH BODY {10+}\r\n${Buffer.from('café faux').toString('latin1')}`))[0]).toBe(
      '* SEARCH',
    );
    expect((await s.send(`UID SEARCH TEXT {5+}\r\n${Buffer.from('café').toString('latin1')}`))[0]).toBe(
      '* SEARCH 1 6',
    );
    expect((await s.send('UID SEARCH FROM pirard'))[0]).toBe('* SEARCH 3');
    // The body of a base64-encoded message/rfc822 part is searched decoded.
    expect((await s.send('UID SEARCH BODY "secret body"'))[0]).toBe('* SEARCH 4');
    expect((await s.send('SEARCH CHARSET KOI8-R BODY x')).at(-1)).toMatch(/NO \[BADCHARSET/);
    s.close();
  });
});

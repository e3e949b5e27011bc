// Fuzz targets of the gateway's parsers of client input: the SMTP header checks and envelope
// addresses, the MIME parser the mailbox runs on every stored message (ENVELOPE, BODYSTRUCTURE,
// part tree) and its header decoders, and the IMAP command reader with the argument parsers
// every command goes through. (The SMTP and IMAP servers themselves, over a socket: servers.ts.)
import { tmpdir } from 'node:os';
import fc from 'fast-check';
import { headerEnd, parseHeader } from '../../../gateway/smtp/header-section.ts';
import {
  checkEnvelopeSender,
  checkHeader,
  DEFAULT_HEADER_LIMITS,
} from '../../../gateway/smtp/message-check.ts';
import { parseFingerprintAddress } from '../../../gateway/smtp/addresses.ts';
import {
  analyzeMessage,
  decodeCharset,
  decodeTransfer,
  decodeWords,
  locatePart,
} from '../../../gateway/mime/index.ts';
import { parseHeader as parseMimeHeader, parseStructured } from '../../../gateway/mime/header.ts';
import { parseAddressList } from '../../../gateway/mime/address.ts';
import { CommandReader, discardLiterals } from '../../../gateway/imap/parser.ts';
import { ParseError, tokenize, type Value } from '../../../gateway/imap/values.ts';
import { parseSearch } from '../../../gateway/imap/search.ts';
import { parseFetchItems, parseFetchModifiers } from '../../../gateway/imap/fetch-items.ts';
import { parseSequenceSet } from '../../../gateway/imap/sequence.ts';
import { decodeMailboxName } from '../../../gateway/imap/utf7.ts';
import { parseDate, parseDateTime } from '../../../gateway/imap/format.ts';
import { anyText, bytesInput, REJECTED, textInput, type Target } from '../harness.ts';

const OWN = ['alice@demo.kith', '0123456789ABCDEF0123456789ABCDEF01234567@kith'];

const MESSAGES = [
  'From: Alice <alice@demo.kith>\r\nTo: bob@demo.kith\r\nSubject: =?utf-8?q?caf=C3=A9?= hi\r\nMessage-ID: <1@x>\r\n' +
    'Date: Thu, 03 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n',
  'From: alice@demo.kith\r\nTo: "Bob, B." <bob@demo.kith>, group: c@d.e, f@g.h;\r\nSubject: parts\r\n' +
    'Content-Type: multipart/mixed; boundary="b1"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\none\r\n' +
    '--b1\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
    Buffer.from(
      'Subject: inner\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\n\r\nx\r\n--b2--\r\n',
    ).toString('base64') +
    "\r\n--b1\r\nContent-Type: application/octet-stream; name*=utf-8''%C3%A9.bin\r\nContent-Transfer-Encoding: quoted-printable\r\n" +
    'Content-Disposition: attachment; filename="a.bin"\r\n\r\n=00=FF soft=\r\nbreak\r\n--b1--\r\nepilogue\r\n',
].map((m) => Buffer.from(m, 'latin1'));

/** What a failed IMAP argument parse is: a BAD answer (ParseError) or a tagged NO (KithError). */
function imapTyped<T>(f: () => T): T | typeof REJECTED {
  try {
    return f();
  } catch (err) {
    if (err instanceof ParseError) return REJECTED;
    throw err;
  }
}

function smtpHeaderTarget(): Target<Buffer> {
  return {
    name: 'smtp-header',
    input: bytesInput(MESSAGES, 2048),
    // What receive-data.ts does with the DATA of a submission: find the header, parse, check.
    run(message) {
      const end = headerEnd(message);
      const header = end < 0 ? message : message.subarray(0, end);
      const parsed = parseHeader(header);
      checkHeader(header, parsed, OWN, DEFAULT_HEADER_LIMITS);
      return parsed;
    },
  };
}

function smtpAddressTarget(): Target<string> {
  return {
    name: 'smtp-address',
    input: textInput(['alice@demo.kith', '0123456789ABCDEF0123456789ABCDEF01234567@kith', '', 'x@y'], 200),
    run(address) {
      checkEnvelopeSender(address, OWN);
      return parseFingerprintAddress(address) ?? REJECTED;
    },
  };
}

function mimeTarget(): Target<Buffer> {
  return {
    name: 'mime-message',
    input: bytesInput(MESSAGES, 4096),
    // What the mailbox computes at insert, then what FETCH BODY[1.2] and friends locate.
    run(raw) {
      const analysis = analyzeMessage(raw);
      for (const path of [[1], [2], [2, 1], [3], [1, 1, 1]]) locatePart(analysis.tree, raw, path);
      return analysis;
    },
  };
}

function mimeHeaderTarget(): Target<string> {
  const seeds = [
    'Content-Type: text/plain; charset="utf-8"; format=flowed\r\nSubject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXM=?=\r\n',
    'To: "A (b)" <a@b.c>, undisclosed:;, =?utf-8?q?=C3=A9?= <e@f.g>\r\n\tcontinued\r\n',
    'Content-Disposition: attachment; filename*0*=utf-8\'\'%C3%A9; filename*1=".txt"\r\n',
  ];
  return {
    name: 'mime-header',
    input: textInput(seeds, 600),
    run(block) {
      const fields = parseMimeHeader(block);
      for (const f of fields) {
        parseStructured(f.value);
        decodeWords(f.value);
        parseAddressList(f.value);
      }
      return fields;
    },
  };
}

function transferTarget(): Target<{ body: Buffer; encoding: string | null; charset: string }> {
  return {
    name: 'mime-transfer',
    input: fc.record({
      body: bytesInput([Buffer.from('aGVsbG8gd29ybGQ=\r\n'), Buffer.from('caf=C3=A9 =\r\nsoft=3D\r\n')], 512),
      encoding: fc.oneof(
        fc.constantFrom('base64', 'quoted-printable', '7bit', '8bit', 'binary', 'x-uue', null),
        anyText(20),
      ),
      charset: fc.oneof(
        fc.constantFrom('utf-8', 'iso-8859-1', 'windows-1252', 'shift_jis', 'utf-16le', 'x-unknown', ''),
        anyText(20),
      ),
    }),
    run: ({ body, encoding, charset }) => decodeCharset(decodeTransfer(body, encoding), charset),
  };
}

const IMAP_COMMANDS = [
  'a1 LOGIN alice "p a s s"\r\n',
  'a2 SELECT INBOX\r\n',
  'a3 UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100> BODYSTRUCTURE) (CHANGEDSINCE 5)\r\n',
  'a4 SEARCH CHARSET UTF-8 OR (FROM "bob" SINCE 1-Jan-2026) NOT (LARGER 1000 KEYWORD $Seen) UID 2:4,7\r\n',
  'a5 APPEND INBOX (\\Seen) "03-Dec-2026 09:00:00 +0000" {11+}\r\nhello world\r\n',
  'a6 STORE 1:3 +FLAGS.SILENT (\\Deleted)\r\na7 IDLE\r\nDONE\r\n',
  'a8 LIST "" "&AOk-t&AOk-/*"\r\na9 RENAME {3}\r\nabc "x"\r\n',
].map((c) => Buffer.from(c, 'latin1'));

/** Runs a command's arguments through the parser that command uses (as the session does). */
function parseArgs(name: string, args: Value[]): void {
  const text = (v: Value | undefined): string => (v && (v.t === 'atom' || v.t === 'string') ? v.v : '');
  const uid = name.startsWith('UID ');
  const verb = uid ? name.slice(4) : name;
  if (verb === 'FETCH') {
    parseSequenceSet(text(args[0]));
    parseFetchItems(args[1]);
    parseFetchModifiers(args[2]);
  } else if (verb === 'SEARCH') parseSearch(args);
  else if (verb === 'STORE' || verb === 'COPY' || verb === 'MOVE') parseSequenceSet(text(args[0]));
  else if (verb === 'APPEND') {
    for (const a of args) if (a.t === 'string' || a.t === 'atom') parseDateTime(a.v);
  } else for (const a of args) if (a.t === 'string' || a.t === 'atom') decodeMailboxName(a.v);
}

function imapCommandsTarget(): Target<{ bytes: Buffer; cuts: number[]; lineMode: boolean }> {
  return {
    name: 'imap-commands',
    input: fc.record({
      bytes: bytesInput(IMAP_COMMANDS, 2048),
      cuts: fc.array(fc.nat(), { maxLength: 6 }),
      lineMode: fc.boolean(),
    }),
    run({ bytes, cuts, lineMode }) {
      const reader = new CommandReader({
        maxLine: 512,
        spillThreshold: 64 * 1024,
        tmpDir: tmpdir(),
        allowLiteral: (tag, _name, size) => (size > 4096 ? `${tag} NO [TOOBIG] too big` : null),
        sendContinuation: () => undefined,
      });
      const events = [];
      let at = 0;
      for (const cut of [...cuts.map((c) => c % (bytes.length + 1))]
        .sort((a, b) => a - b)
        .concat(bytes.length)) {
        reader.push(bytes.subarray(at, Math.max(at, cut)));
        at = Math.max(at, cut);
        for (let e = reader.next(lineMode); e; e = reader.next(lineMode)) {
          events.push(e.type);
          if (e.type === 'command') {
            imapTyped(() => parseArgs(e.name, e.args));
            discardLiterals(e.literals);
          }
        }
      }
      return events;
    },
  };
}

function imapValuesTarget(): Target<string[]> {
  const seeds = ['(FLAGS (\\Seen $x) BODY[1.2.HEADER]<0.10> "q\\"s")', 'NIL {5}', '1:*,3 ((a b) (c))'];
  return {
    name: 'imap-values',
    input: fc.array(textInput(seeds, 200), { minLength: 1, maxLength: 3 }),
    run(parts) {
      const literals = parts
        .slice(1)
        .map(() => ({ t: 'literal' as const, size: 3, data: Buffer.from('abc') }));
      return imapTyped(() => {
        const values = tokenize(parts, literals);
        parseSearch(values);
        return values;
      });
    },
  };
}

function imapSmallTarget(): Target<string> {
  return {
    name: 'imap-small-parsers',
    input: textInput(
      ['1:*,3:5,7', '03-Dec-2026 09:00:00 +0000', '3-Dec-2026', '&AOk-t&AOk-', 'Entw&APw-rfe'],
      100,
    ),
    run(text) {
      imapTyped(() => parseSequenceSet(text));
      parseDateTime(text);
      parseDate(text);
      return decodeMailboxName(text);
    },
  };
}

export function gatewayTargets(): Target<never>[] {
  return [
    smtpHeaderTarget(),
    smtpAddressTarget(),
    mimeTarget(),
    mimeHeaderTarget(),
    transferTarget(),
    imapCommandsTarget(),
    imapValuesTarget(),
    imapSmallTarget(),
  ] as Target<never>[];
}

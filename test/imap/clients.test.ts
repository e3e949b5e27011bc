import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PASS, USER, sampleMessage, startHarness, type Harness } from './harness.ts';

const run = promisify(execFile);
let h: Harness;
let caFile: string;

beforeAll(async () => {
  h = await startHarness({ allowInsecureAuth: false });
  caFile = join(h.dir, 'ca.pem');
  writeFileSync(caFile, h.tls.cert);
});
afterAll(async () => {
  await h.close();
});

describe('python3 imaplib', () => {
  test('STARTTLS, login, list, select, fetch, store, search, append', async () => {
    await h.store.deliver({ raw: sampleMessage(1) });
    await h.store.deliver({ raw: sampleMessage(2) });
    const script = `
import imaplib, ssl, sys, json
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.starttls(ssl_context=ctx)
m.login(sys.argv[3], sys.argv[4])
out = {}
typ, boxes = m.list()
out['list'] = [b.decode() for b in boxes]
typ, data = m.select('INBOX')
out['exists'] = data[0].decode()
typ, data = m.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)] FLAGS)')
out['fetch'] = data[0][1].decode()
typ, data = m.store('2', '+FLAGS', '(\\\\Seen)')
out['store'] = data[0].decode()
typ, data = m.search(None, 'SEEN')
out['seen'] = data[0].decode()
typ, data = m.append('INBOX', '(\\\\Flagged)', None, b'From: py@example.org\\r\\nSubject: from python\\r\\n\\r\\nhi\\r\\n')
out['append'] = typ + ' ' + data[0].decode()
typ, data = m.uid('SEARCH', 'SUBJECT', '"from python"')
out['uidsearch'] = data[0].decode()
m.logout()
print(json.dumps(out))
`;
    const { stdout } = await run('python3', ['-c', script, String(h.port), caFile, USER, PASS]);
    const out = JSON.parse(stdout) as Record<string, unknown>;
    expect(out.list).toEqual(expect.arrayContaining(['(\\HasNoChildren \\Junk) "/" "Junk"']));
    expect(out.exists).toBe('2');
    expect(out.fetch).toBe('Subject: Test message 1\r\n\r\n');
    expect(out.store).toBe('2 (FLAGS (\\Seen))');
    expect(out.seen).toBe('2');
    expect(out.append).toMatch(/^OK \[APPENDUID \d+ 3\]/);
    expect(out.uidsearch).toBe('3');
  });
});

describe('curl imap://', () => {
  test('lists mailboxes and fetches a message over STARTTLS', async () => {
    const base = `imap://127.0.0.1:${h.port}`;
    const common = [
      '-s',
      '--ssl-reqd',
      '--cacert',
      caFile,
      '--user',
      `${USER}:${PASS}`,
      '--resolve',
      `localhost:${h.port}:127.0.0.1`,
    ];
    const list = await run('curl', [...common, `imap://localhost:${h.port}/`]);
    expect(list.stdout).toContain('"Archive"');
    const msg = await run('curl', [...common, `imap://localhost:${h.port}/INBOX;UID=1`]);
    expect(msg.stdout).toContain('Subject: Test message 1');
    expect(msg.stdout).toContain('this is message number 1.');
    void base;
  });
});

describe('mbsync (isync)', () => {
  test('syncs both ways, and after a restart re-downloads nothing', async () => {
    const maildir = join(h.dir, 'maildir');
    mkdirSync(maildir, { recursive: true });
    const rc = join(h.dir, 'mbsyncrc');
    writeFileSync(
      rc,
      `IMAPAccount kith
Host 127.0.0.1
Port ${h.port}
User ${USER}
Pass "${PASS}"
SSLType STARTTLS
CertificateFile ${caFile}
AuthMechs PLAIN

IMAPStore remote
Account kith

MaildirStore local
Path ${maildir}/
Inbox ${maildir}/INBOX
SubFolders Verbatim

Channel kith
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
SyncState *
Sync All
Expunge Both
`,
    );
    const sync = async (): Promise<string> => {
      const r = await run('mbsync', ['-c', rc, '-V', 'kith'], { env: { ...process.env, HOME: h.dir } });
      return r.stdout + r.stderr;
    };
    const before = h.store.status('INBOX').messages;
    await sync();
    const cur = (dir: string): string[] =>
      ['cur', 'new'].flatMap((d) => {
        try {
          return readdirSync(join(dir, d));
        } catch {
          return [];
        }
      });
    expect(cur(join(maildir, 'INBOX'))).toHaveLength(before);

    // Local → server: a new message in the Maildir appears on the server.
    writeFileSync(
      join(maildir, 'Archive', 'new', `${Date.now()}.1.localhost`),
      'From: local@example.org\r\nSubject: written locally\r\n\r\nfrom the maildir\r\n',
    );
    await sync();
    expect(h.store.status('Archive').messages).toBe(1);

    // Server → local: a delivery shows up.
    await h.store.deliver({ raw: sampleMessage(42) });
    await sync();
    expect(cur(join(maildir, 'INBOX'))).toHaveLength(before + 1);

    // After a server restart, UIDs are the same: nothing is downloaded or uploaded again.
    const filesBefore = [...cur(join(maildir, 'INBOX')), ...cur(join(maildir, 'Archive'))].sort();
    const uidNext = h.store.status('INBOX').uidNext;
    await h.restart();
    const log = await sync();
    expect(log).not.toMatch(/UIDVALIDITY/i);
    expect([...cur(join(maildir, 'INBOX')), ...cur(join(maildir, 'Archive'))].sort()).toEqual(filesBefore);
    expect(h.store.status('INBOX').uidNext).toBe(uidNext);
    expect(h.store.status('Archive').messages).toBe(1);
    // The restarted server counted the STARTTLS handshake of that sync (and, with
    // allowInsecureAuth off, could not have taken the login without it).
    expect(h.server.stats().starttls).toBeGreaterThanOrEqual(1);
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KithNode } from '../../agent/node.ts';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';
import {
  line,
  messagesContaining,
  progress,
  startAgents,
  until,
  type TestNetwork,
} from '../agents/network.ts';
import { linkIn, makeWebm, probe, run, stepGate } from './helpers.ts';

const MiB = 1024 * 1024;
const CLIENT = join(import.meta.dirname, 'mail_client.py');

/** python3's smtplib submits a mail with `file` attached (NOTIFY=SUCCESS), `more` in a nested multipart. */
async function submitWithAttachment(
  from: KithNode,
  to: KithNode,
  file: string,
  ...more: string[]
): Promise<void> {
  const s = from.mailSettings;
  const { stdout } = await run('python3', [
    CLIENT,
    'send',
    String(s.smtp.port),
    s.user,
    s.pass,
    s.email,
    to.identity.email,
    file,
    ...more,
  ]);
  expect(JSON.parse(stdout)).toEqual({ refused: {} });
}

/** python3's imaplib fetches the INBOX. */
async function fetchInbox(node: KithNode): Promise<{ subject: string; raw: string }[]> {
  const s = node.mailSettings;
  const { stdout } = await run('python3', [CLIENT, 'fetch', String(s.imap.port), s.user, s.pass], {
    maxBuffer: 64 * MiB,
  });
  return JSON.parse(stdout) as { subject: string; raw: string }[];
}

describe('an attachment above streams.linkAttachmentsAbove, submitted over SMTP', () => {
  let net: TestNetwork;
  let clip: string;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b', 'c']), {
      // A long stall timeout: the paused link must not make the sender change paths mid-test.
      delivery: { stallTimeoutMs: 120_000 },
      streams: { linkAttachmentsAbove: MiB },
    });
    clip = join(net.dir, 'clip.webm');
    await makeWebm(clip);
  });
  afterAll(async () => net?.close());

  it('reaches the recipient at once as a mail with a FileLink that plays while the clip arrives; the status email comes with the last chunk', async () => {
    const [a, b, c] = ['a', 'b', 'c'].map((n) => net.agent(n).node);
    const original = await readFile(clip);
    expect(original.length).toBeGreaterThan(MiB);
    // b hands c the manifest and 3 chunks, then holds the rest.
    const gate = stepGate(b, c, 4);
    await submitWithAttachment(a, c, clip);
    const id = a.outbox.recent(1)[0].id;

    // The sender rewrote it into a file-link payload: the clip as it is, not base64 (4/3 larger).
    const linkedDir = join(a.paths.blobs, 'linked');
    const [payload] = await readdir(linkedDir);
    const payloadSize = (await stat(join(linkedDir, payload))).size;
    expect(payloadSize).toBeLessThan(original.length + 64 * 1024);
    const chunks = Math.ceil(payloadSize / CHUNK_BYTES);
    expect(chunks).toBeGreaterThan(5);

    // The mail is in c's INBOX (a real IMAP client sees it) while most of the clip is held at b.
    await until(
      async () => ((await messagesContaining(c, 'X-Mozilla-Cloud-Part')).length > 0 ? true : undefined),
      'the mail with its link',
    );
    const inbox = await fetchInbox(c);
    expect(inbox).toHaveLength(1);
    const mail = inbox[0];
    expect(mail.subject).toBe('a clip for you');
    expect(mail.raw).toContain('Here is the clip from yesterday.');
    expect(mail.raw).toMatch(/Content-Disposition: attachment; filename="clip\.webm"/);
    expect(mail.raw).not.toContain('X-Kith-Linked-File');
    const url = linkIn(Buffer.from(mail.raw, 'latin1'))!;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/t\/[A-Za-z0-9_-]{32}\/clip\.webm$/);
    expect(gate.held()).toBeGreaterThan(0);

    // Played and ranged while it arrives: ffprobe reads it, curl gets exact bytes with the full length.
    expect((await probe(url)).codecs).toEqual(['opus', 'vp8']);
    const { stdout: head } = await run('curl', ['-sS', '-D', '-', '-o', '/dev/null', '-r', '100-599', url]);
    expect(head).toMatch(/^HTTP\/1\.1 206/);
    expect(head).toContain(`Content-Range: bytes 100-599/${original.length}`);
    const { stdout: bytes } = await run('curl', ['-sS', '-r', '100-599', url], { encoding: 'buffer' });
    expect(Buffer.from(bytes).equals(original.subarray(100, 600))).toBe(true);

    // All but the last chunk reach c and are acknowledged back to a: still no status email. b
    // holds the last chunk and the hash unit that follows it (a version 3 manifest, protocol 7.9).
    await gate.allow(chunks);
    await until(
      () => (progress(a, id).chunks?.acked === chunks - 1 ? true : undefined),
      'every chunk but the last acknowledged',
    );
    await until(() => (gate.held() >= 2 ? true : undefined), 'the hash unit held at b', 60_000);
    expect(gate.held()).toBe(2);
    expect(c.engine.metrics.get('chunks_received')).toBe(chunks - 1);
    expect(await messagesContaining(a, 'Subject: Delivered: a clip for you')).toHaveLength(0);

    // The last chunk is stored: the status email follows.
    await gate.allow(Infinity);
    await until(
      async () =>
        (await messagesContaining(a, 'Subject: Delivered: a clip for you')).length > 0 ? true : undefined,
      "the sender's status email",
    );
    expect(c.engine.metrics.get('chunks_received')).toBe(chunks);
    expect(progress(a, id).state).toBe('delivered');

    // Saved complete among the received files; the link now reads it; still one mail, no notice.
    const saved = (await readdir(join(c.paths.root, 'received'))).filter((f) => f.endsWith('clip.webm'));
    expect(saved).toHaveLength(1);
    expect((await readFile(join(c.paths.root, 'received', saved[0]))).equals(original)).toBe(true);
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(original)).toBe(true);
    expect(await fetchInbox(c)).toHaveLength(1);
  });

  it('links every attachment above the size, the nested one too; each link serves its own file with ranges; the small one stays in the mail', async () => {
    const [a, c] = ['a', 'c'].map((n) => net.agent(n).node);
    const files = { 'top.bin': randomBytes(MiB + 300_001), 'nested.bin': randomBytes(MiB + 77_777) };
    const small = randomBytes(20_000);
    for (const [name, data] of Object.entries(files)) await writeFile(join(net.dir, name), data);
    await writeFile(join(net.dir, 'small.bin'), small);
    const before = (await fetchInbox(c)).length;
    await submitWithAttachment(
      a,
      c,
      join(net.dir, 'top.bin'),
      join(net.dir, 'nested.bin'),
      join(net.dir, 'small.bin'),
    );
    const id = a.outbox.recent(1)[0].id;
    const inbox = await until(async () => {
      const all = await fetchInbox(c);
      return all.length > before ? all : undefined;
    }, 'the mail with its links');
    const mail = inbox.find((m) => m.subject === 'files for you')!;
    expect(mail.raw).toContain('And the rest of the files.');
    expect(mail.raw).not.toContain('X-Kith-Linked-File');
    // The small attachment is still in the mail, base64 as python wrote it.
    expect(mail.raw.replace(/\r\n/g, '')).toContain(small.toString('base64').slice(0, 200));
    const urls = [...mail.raw.matchAll(/X-Mozilla-Cloud-Part: cloudFile; url=(\S+)/g)].map((m) => m[1]);
    expect(urls.map((u) => u.split('/').pop())).toEqual(['top.bin', 'nested.bin']);
    expect(new Set(urls.map((u) => u.split('/')[4])).size).toBe(2);

    // curl: each link answers ranges with its own file's full length and bytes.
    for (const [k, [name, data]] of Object.entries(files).entries()) {
      const { stdout: head } = await run('curl', [
        '-sS',
        '-D',
        '-',
        '-o',
        '/dev/null',
        '-r',
        '1000-1999',
        urls[k],
      ]);
      expect(head).toMatch(/^HTTP\/1\.1 206/);
      expect(head).toContain(`Content-Range: bytes 1000-1999/${data.length}`);
      const tail = `${data.length - 500}-`;
      const { stdout: bytes } = await run('curl', ['-sS', '-r', tail, urls[k]], { encoding: 'buffer' });
      expect({ name, tail: Buffer.from(bytes).equals(data.subarray(data.length - 500)) }).toEqual({
        name,
        tail: true,
      });
    }

    // Delivered: both saved whole under received/, the links read them; still one mail.
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered', 60_000);
    const received = await readdir(join(c.paths.root, 'received'));
    for (const [k, [name, data]] of Object.entries(files).entries()) {
      const saved = received.filter((f) => f.endsWith(`-${name}`));
      expect(saved).toHaveLength(1);
      expect((await readFile(join(c.paths.root, 'received', saved[0]))).equals(data)).toBe(true);
      expect(Buffer.from(await (await fetch(urls[k])).arrayBuffer()).equals(data)).toBe(true);
    }
    expect(received.some((f) => f.endsWith('small.bin'))).toBe(false);
    expect((await fetchInbox(c)).filter((m) => m.subject === 'files for you')).toHaveLength(1);
  });
});

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ImapFlow } from 'imapflow';
import { callNode } from '../../agent/control/client.ts';
import { KITH_BIN, exited, runKith } from '../helpers/cli.ts';
import { linkIn } from '../streams/helpers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { HANG_MS } from '../helpers/hang.ts';

const SMTP_SEND = fileURLToPath(new URL('./smtp-send.py', import.meta.url));

interface DemoAgentJson {
  name: string;
  email: string;
  fingerprint: string;
  peerId: string;
  dataDir: string;
  smtp: { host: string; port: number; user: string; pass: string; tls: string };
  imap: { host: string; port: number; user: string; pass: string; tls: string };
}

function mimeWithAttachment(from: string, to: string, subject: string, attachment: Buffer): Buffer {
  const boundary = 'kith-test-' + randomBytes(6).toString('hex');
  const b64 = attachment.toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    [
      `From: ${from}`,
      `To: ${to}`,
      `Subject: ${subject}`,
      `Message-ID: <${randomBytes(8).toString('hex')}@test>`,
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=utf-8',
      '',
      'The attachment is 5 MB of random bytes.',
      `--${boundary}`,
      'Content-Type: application/octet-stream; name="random.bin"',
      'Content-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="random.bin"',
      '',
      b64,
      `--${boundary}--`,
      '',
    ].join('\r\n'),
  );
}

/** python3 smtplib submits (asynchronously, so the test's own IMAP sessions keep running). */
async function smtpSend(
  agent: DemoAgentJson,
  to: string,
  file: string,
): Promise<{ ok: boolean; refused: Record<string, [number, string]> }> {
  const { stdout } = await promisify(execFile)(
    'python3',
    [
      SMTP_SEND,
      agent.smtp.host,
      String(agent.smtp.port),
      agent.smtp.user,
      agent.smtp.pass,
      agent.email,
      to,
      file,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  return JSON.parse(stdout) as { ok: boolean; refused: Record<string, [number, string]> };
}

async function imap(agent: DemoAgentJson): Promise<ImapFlow> {
  const client = new ImapFlow({
    host: agent.imap.host,
    port: agent.imap.port,
    secure: false,
    doSTARTTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: agent.imap.user, pass: agent.imap.pass },
    logger: false,
  });
  await client.connect();
  return client;
}

async function until<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function messagesWithSubject(client: ImapFlow, subject: string): Promise<Buffer[]> {
  const lock = await client.getMailboxLock('INBOX');
  try {
    const uids = (await client.search({ header: { subject } }, { uid: true })) || [];
    const found: Buffer[] = [];
    for (const uid of uids) {
      const msg = await client.fetchOne(String(uid), { source: true }, { uid: true });
      if (msg && msg.source) found.push(msg.source);
    }
    return found;
  } finally {
    lock.release();
  }
}

describe('kith demo end to end, with real mail clients', () => {
  const dir = tempDir('kith-e2e-');
  let demo: ChildProcess;
  let agents: Record<string, DemoAgentJson>;
  /** Everything the demo wrote on stdout, from start to exit. */
  let stdout = '';

  beforeAll(async () => {
    demo = spawn(
      process.execPath,
      [KITH_BIN, 'demo', '--json', '--agents', '4', '--dir', join(dir.path, 'net')],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    demo.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    demo.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo did not start: ${stderr}`)), HANG_MS);
      demo.stdout!.on('data', () => {
        if (stdout.includes('\n')) {
          clearTimeout(timer);
          resolve(stdout.slice(0, stdout.indexOf('\n')));
        }
      });
      demo.once('exit', (code) => reject(new Error(`demo exited ${code}: ${stderr}`)));
    });
    const parsed = JSON.parse(line) as { agents: DemoAgentJson[] };
    agents = Object.fromEntries(parsed.agents.map((a) => [a.name, a]));
  });

  afterAll(async () => {
    if (demo && demo.exitCode === null) {
      demo.kill('SIGTERM');
      expect(await exited(demo)).toBe(0);
    }
    // --json: exactly one line on stdout, from start to exit.
    expect(stdout.split('\n')).toHaveLength(2);
    expect(stdout.endsWith('\n')).toBe(true);
    const leftovers = execFileSync('ps', ['-eo', 'args']).toString();
    expect(leftovers).not.toContain(join(dir.path, 'net'));
    dir.remove();
  });

  it("prints one JSON line with every agent's settings", () => {
    expect(Object.keys(agents)).toEqual(['alice', 'carol', 'dave', 'bob']);
    expect(stdout.split('\n').filter(Boolean)).toHaveLength(1);
    for (const a of Object.values(agents)) {
      // The keys issue 4 names.
      expect(Object.keys(a)).toEqual(
        expect.arrayContaining(['name', 'email', 'fingerprint', 'peerId', 'smtp', 'imap']),
      );
      for (const server of [a.smtp, a.imap]) {
        expect(Object.keys(server).sort()).toEqual(['host', 'pass', 'port', 'tls', 'user']);
        expect(server.port).toBeGreaterThan(0);
        expect(server.pass.length).toBeGreaterThan(0);
      }
      expect(a.fingerprint).toMatch(/^[0-9A-F]{40}$/);
      expect(a.peerId).toMatch(/^12D3KooW/);
      expect(a.smtp).toMatchObject({ host: '127.0.0.1', tls: 'starttls', user: a.email });
      expect(a.imap).toMatchObject({ host: '127.0.0.1', tls: 'starttls', user: a.email });
    }
  });

  it('alice mails bob a 5 MB attachment through the relays; bob sees it idling, byte for byte, verified; alice gets "delivered"; bob\'s reply reaches her', async () => {
    const { alice, bob } = agents;
    const bobImap = await imap(bob);
    const aliceImap = await imap(alice);
    try {
      const lock = await bobImap.getMailboxLock('INBOX');
      lock.release();
      const seen = new Promise<void>((resolve) => bobImap.once('exists', () => resolve()));
      // imapflow idles on its own once the mailbox is selected and no command runs.
      const original = mimeWithAttachment(
        alice.email,
        bob.email,
        'five megabytes',
        randomBytes(5 * 1024 * 1024),
      );
      const file = join(dir.path, 'five.eml');
      writeFileSync(file, original);
      expect(await smtpSend(alice, bob.email, file)).toEqual({ ok: true, refused: {} });
      await seen;
      const [received] = await until(
        async () => {
          const found = await messagesWithSubject(bobImap, 'five megabytes');
          return found.length > 0 ? found : undefined;
        },
        HANG_MS,
        'bob to receive the message',
      );
      // The gateway adds its verdict on top; everything after it is the original, byte for byte.
      expect(received.subarray(received.length - original.length).equals(original)).toBe(true);
      const added = received.subarray(0, received.length - original.length).toString();
      expect(added).toMatch(/^Authentication-Results: kith; kith=pass header\.from=alice@demo\.kith/m);
      expect(added).toContain(alice.fingerprint);

      const [status] = await until(
        async () => {
          const found = await messagesWithSubject(aliceImap, 'five megabytes');
          return found.length > 0 ? found : undefined;
        },
        HANG_MS,
        "alice's delivered status email",
      );
      expect(status.toString()).toMatch(/^Subject: Delivered: five megabytes/m);
      expect(status.toString()).toMatch(/report-type="?delivery-status/);

      const reply = join(dir.path, 'reply.eml');
      writeFileSync(
        reply,
        [
          `From: ${bob.email}`,
          `To: ${alice.email}`,
          'Subject: Re: five megabytes',
          '',
          'Got it, thanks!',
          '',
        ].join('\r\n'),
      );
      expect((await smtpSend(bob, alice.email, reply)).ok).toBe(true);
      const [answer] = await until(
        async () => {
          const found = await messagesWithSubject(aliceImap, 'Re: five megabytes');
          const fromBob = found.filter((m) => m.toString().includes('Got it, thanks!'));
          return fromBob.length > 0 ? fromBob : undefined;
        },
        HANG_MS,
        "bob's reply at alice",
      );
      expect(answer.toString()).toMatch(/kith=pass header\.from=bob@demo\.kith/);
    } finally {
      await bobImap.logout().catch(() => undefined);
      await aliceImap.logout().catch(() => undefined);
    }
  });

  it('refuses at RCPT TO an address nobody trusts, saying what to do', async () => {
    const file = join(dir.path, 'stranger.eml');
    writeFileSync(
      file,
      `From: ${agents.alice.email}\r\nTo: mallory@elsewhere.example\r\nSubject: hi\r\n\r\nhello\r\n`,
    );
    const result = await smtpSend(agents.alice, 'mallory@elsewhere.example', file);
    expect(result.ok).toBe(false);
    const [code, text] = result.refused['mallory@elsewhere.example'];
    expect(code).toBe(550);
    expect(text).toMatch(/invitation/);
  });

  it('a relay stopped mid-delivery: the message arrives once over the other path, and tracking shows the change', async () => {
    const { alice, bob } = agents;
    const attachment = randomBytes(48 * 1024 * 1024);
    const original = mimeWithAttachment(alice.email, bob.email, 'path change', attachment);
    const file = join(dir.path, 'big.eml');
    writeFileSync(file, original);
    type Entry = {
      id: string;
      size: number;
      state: string;
      hops: { hop: number; agent?: string; event: string }[];
    };
    // Straight to the control socket (what `kith outbox` uses): the relay must go down mid-transfer.
    const control = (a: DemoAgentJson): string => join(a.dataDir, 'control.sock');
    const sent = smtpSend(alice, bob.email, file);
    const entry = await until(
      async () => {
        const [first] = await callNode<Entry[]>(control(alice), 'outbox', { limit: 1 });
        return first?.size > 40e6 && first.hops.some((h) => h.hop === 1 && h.agent) ? first : undefined;
      },
      HANG_MS,
      'the first hop of the big message',
      20,
    );
    const firstRelay = entry.hops.find((h) => h.hop === 1 && h.agent)!.agent!;
    const relay = Object.values(agents).find((a) => a.peerId === firstRelay)!;
    expect(['carol', 'dave']).toContain(relay.name);
    await callNode(control(relay), 'stop');
    expect((await sent).ok).toBe(true);

    const bobImap = await imap(bob);
    try {
      await until(
        async () => ((await messagesWithSubject(bobImap, 'path change')).length > 0 ? true : undefined),
        HANG_MS,
        'the big message at bob',
      );
      await new Promise((r) => setTimeout(r, 1500));
      const copies = await messagesWithSubject(bobImap, 'path change');
      expect(copies).toHaveLength(1);
      // Past streams.linkAttachmentsAbove (10 MiB) the attachment travels as a file link
      // (docs/protocol.md 8.3): bob's mail links to his own gateway, which serves every byte of it.
      const url = linkIn(copies[0]);
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
      const served = Buffer.from(await (await fetch(url!)).arrayBuffer());
      expect(served.equals(attachment)).toBe(true);
    } finally {
      await bobImap.logout().catch(() => undefined);
    }
    const track = runKith(['--data-dir', alice.dataDir, 'track', '--once', entry.id]);
    // The path change is visible: a stall (or a refused first hop) and then the other relay as hop 1.
    expect(track.stdout).toMatch(/stalled: alternate path/);
    expect(track.stdout).toContain('delivered');
    const other = Object.values(agents).find((a) => ['carol', 'dave'].includes(a.name) && a !== relay)!;
    expect(track.stdout).toContain(other.peerId);
  });
});

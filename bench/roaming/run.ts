// Roaming bench: how long two agents of one Kith entity take to converge after one was offline
// while the other took C changes (flags, moves, expunges) on an N-message mailbox, against
// Dovecot's dsync (`doveadm sync`) replicating the same changes between two Maildirs, in the same
// run. Also the first, whole-history transfer to a new device (kith agent add) vs a first dsync.
// Run: node --import tsx bench/roaming/run.ts [--messages 2000] [--changes 1000]
import '../../common/polyfill.ts';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import type { KithNode } from '../../agent/node.ts';
import { startEntity } from '../../test/roaming/entity.ts';
import { dovecotMissing } from '../lib/mail-servers.ts';
import { DOVECOT_PASS, startDovecot } from './dovecot.ts';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg('messages', 2000);
const C = arg('changes', 1000);
const FOLDERS = ['INBOX', 'Work', 'Lists'];
const FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '$Label1'];

const message = (i: number): Buffer =>
  Buffer.from(
    `From: sender${i % 50}@example.org\r\nTo: alice@roaming.kith\r\nSubject: m${i}\r\n` +
      `Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m${i}@bench>\r\n\r\n${'body line\r\n'.repeat(20)}`,
  );

type Action =
  | { kind: 'flag'; i: number; flag: string; on: boolean }
  | { kind: 'move'; i: number; to: string }
  | { kind: 'expunge'; i: number };

/** C random actions over messages 0..N-1, valid against a model of where each message is. */
function script(seed: number): { actions: Action[]; counts: Map<string, number> } {
  let s = seed;
  const random = () => ((s = (s * 1103515245 + 12345) % 2 ** 31), s / 2 ** 31);
  const where: (string | undefined)[] = Array.from({ length: N }, () => 'INBOX');
  const actions: Action[] = [];
  while (actions.length < C) {
    const i = Math.floor(random() * N);
    const at = where[i];
    if (at === undefined) continue;
    const r = random();
    if (r < 0.6)
      actions.push({ kind: 'flag', i, flag: FLAGS[Math.floor(random() * FLAGS.length)], on: r < 0.45 });
    else if (r < 0.93) {
      const to = FOLDERS.filter((f) => f !== at)[Math.floor(random() * 2)];
      actions.push({ kind: 'move', i, to });
      where[i] = to;
    } else {
      actions.push({ kind: 'expunge', i });
      where[i] = undefined;
    }
  }
  const counts = new Map(FOLDERS.map((f) => [f, where.filter((w) => w === f).length]));
  return { actions, counts };
}

/** Applies the script over IMAP, tracking each message's mailbox and UID. */
async function apply(client: ImapFlow, actions: Action[]): Promise<void> {
  const loc = new Map<number, { box: string; uid: number }>();
  await client.mailboxOpen('INBOX');
  for await (const m of client.fetch('1:*', { uid: true, envelope: true })) {
    loc.set(Number(/m(\d+)/.exec(m.envelope?.subject ?? '')?.[1]), { box: 'INBOX', uid: m.uid });
  }
  let open = 'INBOX';
  for (const a of actions) {
    const at = loc.get(a.i)!;
    if (open !== at.box) {
      await client.mailboxOpen(at.box);
      open = at.box;
    }
    const uid = String(at.uid);
    if (a.kind === 'flag') {
      if (a.on) await client.messageFlagsAdd(uid, [a.flag], { uid: true });
      else await client.messageFlagsRemove(uid, [a.flag], { uid: true });
    } else if (a.kind === 'move') {
      const r = await client.messageMove(uid, a.to, { uid: true });
      const to = r ? r.uidMap?.get(at.uid) : undefined;
      if (to === undefined) throw new Error(`no COPYUID for a move of m${a.i}`);
      loc.set(a.i, { box: a.to, uid: to });
    } else {
      await client.messageDelete(uid, { uid: true });
      loc.delete(a.i);
    }
  }
}

async function counts(client: ImapFlow): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const f of FOLDERS) {
    const st = await client.status(f, { messages: true });
    out.set(f, st === false ? -1 : (st.messages ?? -1));
  }
  return out;
}

/** Every message's flags per mailbox (subject → flags), for comparing two devices. */
async function flagsOf(client: ImapFlow): Promise<string> {
  const lines: string[] = [];
  for (const f of FOLDERS) {
    await client.mailboxOpen(f);
    if (!client.mailbox || client.mailbox.exists === 0) continue;
    for await (const m of client.fetch('1:*', { envelope: true, flags: true })) {
      lines.push(
        `${f} ${m.envelope?.subject} ${[...(m.flags ?? [])]
          .filter((x) => x !== '\\Recent')
          .sort()
          .join(',')}`,
      );
    }
  }
  return lines.sort().join('\n');
}

/** Waits until `b` holds everything `a` holds (version vectors equal, nothing missing, bridge idle). */
async function convergedMs(a: KithNode, b: KithNode, t0: number): Promise<number> {
  for (;;) {
    const va = JSON.stringify(Object.entries(a.roaming.replica.versionVector()).sort());
    const vb = JSON.stringify(Object.entries(b.roaming.replica.versionVector()).sort());
    if (va === vb && b.roaming.bridge.missingBlobs().length === 0) {
      await b.roaming.bridge.idle();
      if (b.roaming.bridge.missingBlobs().length === 0) return performance.now() - t0;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

const kithClient = (node: KithNode) => {
  const s = node.mailSettings;
  return new ImapFlow({
    host: s.imap.host,
    port: s.imap.port,
    secure: false,
    doSTARTTLS: true,
    auth: { user: s.user, pass: s.pass },
    tls: { rejectUnauthorized: false },
    logger: false,
  });
};

async function main(): Promise<void> {
  const missing = dovecotMissing();
  if (missing) throw new Error(`baseline not run, no ratio: ${missing}`);
  const { actions, counts: expected } = script(13);
  const root = mkdtempSync(join(tmpdir(), 'kith-bench-roaming-'));
  const results: Record<string, number> = {};
  try {
    // ---- Kith: home takes the mailbox; the laptop joins (history), goes away, comes back.
    const alice = await startEntity(['home', 'laptop']);
    try {
      const home = kithClient(alice.node('home'));
      await home.connect();
      await home.mailboxCreate('Work');
      await home.mailboxCreate('Lists');
      await alice.stop('laptop');
      for (let i = 0; i < N; i++) await home.append('INBOX', message(i), []);
      await alice.node('home').roaming.bridge.idle();
      await alice.start('laptop');
      let t0 = performance.now();
      await alice.link('laptop', 'home');
      results.kithHistory = await convergedMs(alice.node('home'), alice.node('laptop'), t0);
      await alice.stop('laptop');
      const t1 = performance.now();
      await apply(home, actions);
      results.kithApply = performance.now() - t1;
      await alice.node('home').roaming.bridge.idle();
      await alice.start('laptop');
      t0 = performance.now();
      await alice.link('laptop', 'home');
      results.kithCatchUp = await convergedMs(alice.node('home'), alice.node('laptop'), t0);
      const laptop = kithClient(alice.node('laptop'));
      await laptop.connect();
      const [ch, cl] = [await counts(home), await counts(laptop)];
      for (const f of FOLDERS) {
        if (ch.get(f) !== expected.get(f) || cl.get(f) !== expected.get(f))
          throw new Error(`Kith ${f}: expected ${expected.get(f)}, home ${ch.get(f)}, laptop ${cl.get(f)}`);
      }
      if ((await flagsOf(home)) !== (await flagsOf(laptop)))
        throw new Error('Kith: flags differ between devices');
      await home.logout();
      await laptop.logout();
    } finally {
      await alice.close();
    }

    // ---- Dovecot: A takes the same mailbox; dsync to B, the same changes on A, dsync again.
    mkdirSync(join(root, 'dovecot'));
    const dove = await startDovecot(
      join(root, 'dovecot'),
      Array.from({ length: N }, (_, i) => message(i)),
    );
    try {
      const a = new ImapFlow({
        host: '127.0.0.1',
        port: dove.port,
        secure: false,
        auth: { user: dove.user, pass: DOVECOT_PASS },
        logger: false,
      });
      await a.connect();
      await a.mailboxCreate('Work');
      await a.mailboxCreate('Lists');
      await a.mailboxOpen('INBOX'); // Dovecot indexes the Maildir here, before any timing
      results.dsyncHistory = dove.sync();
      const t1 = performance.now();
      await apply(a, actions);
      results.dovecotApply = performance.now() - t1;
      results.dsyncCatchUp = dove.sync();
      for (const f of FOLDERS) {
        const got = dove.countB(f);
        if (got !== expected.get(f)) throw new Error(`dsync ${f}: expected ${expected.get(f)}, B has ${got}`);
      }
      await a.logout();
    } finally {
      await dove.stop();
    }

    const row = (name: string, k: number, d: number) =>
      console.log(
        name.padEnd(52) +
          k.toFixed(0).padStart(10) +
          d.toFixed(0).padStart(10) +
          (k / d).toFixed(2).padStart(8),
      );
    console.log(
      `\nRoaming on ${N} messages, ${C} changes (ms; ratio = Kith / Dovecot, < 1 means Kith is faster)`,
    );
    console.log('scenario'.padEnd(52) + 'kith'.padStart(10) + 'dsync'.padStart(10) + 'ratio'.padStart(8));
    row('whole history to a new device', results.kithHistory, results.dsyncHistory);
    row(`catch up after ${C} changes while offline`, results.kithCatchUp, results.dsyncCatchUp);
    row(`the ${C} changes over IMAP on the online device`, results.kithApply, results.dovecotApply);
    console.log(
      'verified: per-mailbox counts as the script says on all stores; Kith flags equal on both devices',
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();

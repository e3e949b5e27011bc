// Roaming bench: how long two agents of one Kith entity take to converge after reconnecting, when
// one was offline while the other took C random changes (flags, moves, expunges, folders made,
// renamed and deleted, friends trusted and revoked) on an N-message mailbox, against Dovecot's
// dsync (`doveadm sync` over TCP) replicating the same changes between two Dovecot instances on
// loopback, in the same run. Also the first, whole-history transfer to a new device (kith agent
// add) vs a first dsync. Issue 13's size is the default (20,000 messages, 10,000 changes: several
// minutes here); --messages 2000 --changes 1000 for a quick look.
// Run: node --import tsx bench/roaming/run.ts [--messages 20000] [--changes 10000]
import '../../common/polyfill.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import type { KithNode } from '../../agent/node.ts';
import type { Fingerprint } from '../../common/ids.ts';
import { state } from '../../test/roaming/imap-actions.ts';
import { startEntity } from '../../test/roaming/entity.ts';
import { dovecotMissing } from '../lib/mail-servers.ts';
import { DOVECOT_PASS, startDovecots } from './dovecot.ts';
import { seedMailStore } from './seed.ts';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
/** A phase done, with the wall clock (stderr: a long run shows where it is). */
const progress = (what: string) =>
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${what}\n`);
const N = arg('messages', 20_000);
const C = arg('changes', 10_000);
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
  | { kind: 'expunge'; i: number }
  | { kind: 'create'; name: string }
  | { kind: 'rename'; from: string; to: string }
  | { kind: 'delete'; name: string }
  | { kind: 'contact'; friend: number; trusted: boolean };

const FRIENDS = 40;
/** A friend's fingerprint (contact changes need no key: `kith trust FINGERPRINT` works the same way). */
const friend = (k: number) => (k + 1).toString(16).padStart(40, 'f').toUpperCase();

/**
 * C random actions over messages 0..N-1, valid against a model of where each message is and which
 * folders exist: flags 55%, moves 27%, expunges 8%, folders made / renamed / deleted (with what
 * they hold) 5%, friends trusted or revoked 5%.
 */
function script(seed: number): { actions: Action[]; counts: Map<string, number>; folders: Set<string> } {
  let s = seed;
  const random = () => ((s = (s * 1103515245 + 12345) % 2 ** 31), s / 2 ** 31);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];
  const where: (string | undefined)[] = Array.from({ length: N }, () => 'INBOX');
  const extra: string[] = [];
  const trusted: boolean[] = Array.from({ length: FRIENDS }, () => false);
  const actions: Action[] = [];
  let made = 0;
  while (actions.length < C) {
    const r = random();
    if (r >= 0.9 && r < 0.95) {
      const f = random();
      if (extra.length < 2 || f < 0.45) {
        const name = `F${made++}`;
        extra.push(name);
        actions.push({ kind: 'create', name });
      } else if (f < 0.75) {
        const from = pick(extra);
        const to = `F${made++}`;
        extra.splice(extra.indexOf(from), 1, to);
        for (let i = 0; i < N; i++) if (where[i] === from) where[i] = to;
        actions.push({ kind: 'rename', from, to });
      } else {
        const name = pick(extra);
        extra.splice(extra.indexOf(name), 1);
        for (let i = 0; i < N; i++) if (where[i] === name) where[i] = undefined;
        actions.push({ kind: 'delete', name });
      }
      continue;
    }
    if (r >= 0.95) {
      const k = Math.floor(random() * FRIENDS);
      trusted[k] = !trusted[k];
      actions.push({ kind: 'contact', friend: k, trusted: trusted[k] });
      continue;
    }
    const i = Math.floor(random() * N);
    const at = where[i];
    if (at === undefined) continue;
    if (r < 0.55) actions.push({ kind: 'flag', i, flag: pick(FLAGS), on: r < 0.4 });
    else if (r < 0.82) {
      // Mostly between the standing folders, one move in five into a folder made during the run.
      const targets = (random() < 0.8 || extra.length === 0 ? FOLDERS : extra).filter((f) => f !== at);
      const to = pick(targets);
      actions.push({ kind: 'move', i, to });
      where[i] = to;
    } else {
      actions.push({ kind: 'expunge', i });
      where[i] = undefined;
    }
  }
  const folders = new Set([...FOLDERS, ...extra]);
  const counts = new Map([...folders].map((f) => [f, where.filter((w) => w === f).length]));
  return { actions, counts, folders };
}

/** Applies the script over IMAP, tracking each message's mailbox and UID; contact changes go to `contact`. */
async function apply(
  client: ImapFlow,
  actions: Action[],
  contact: (fingerprint: string, trusted: boolean) => void,
): Promise<void> {
  const loc = new Map<number, { box: string; uid: number }>();
  const index = async (box: string) => {
    await client.mailboxOpen(box);
    if (!client.mailbox || client.mailbox.exists === 0) return;
    for await (const m of client.fetch('1:*', { uid: true, envelope: true })) {
      loc.set(Number(/m(\d+)/.exec(m.envelope?.subject ?? '')?.[1]), { box, uid: m.uid });
    }
  };
  await index('INBOX');
  let open = 'INBOX';
  for (const a of actions) {
    if (a.kind === 'contact') {
      contact(friend(a.friend), a.trusted);
      continue;
    }
    if (a.kind === 'create' || a.kind === 'rename' || a.kind === 'delete') {
      if (open !== 'INBOX') {
        await client.mailboxOpen('INBOX');
        open = 'INBOX';
      }
      if (a.kind === 'create') await client.mailboxCreate(a.name);
      else if (a.kind === 'rename') {
        await client.mailboxRename(a.from, a.to);
        for (const [i, l] of loc) if (l.box === a.from) loc.delete(i);
        await index(a.to);
        open = a.to;
      } else {
        await client.mailboxDelete(a.name);
        for (const [i, l] of loc) if (l.box === a.name) loc.delete(i);
      }
      continue;
    }
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

async function counts(client: ImapFlow, folders: Iterable<string>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const f of folders) {
    const st = await client.status(f, { messages: true });
    out.set(f, st === false ? -1 : (st.messages ?? -1));
  }
  return out;
}

/** Checks a store against the script's model: each folder holds as many messages as it says. */
async function expectCounts(what: string, client: ImapFlow, expected: Map<string, number>): Promise<void> {
  const got = await counts(client, expected.keys());
  for (const [f, n] of expected) {
    if (got.get(f) !== n) throw new Error(`${what} ${f}: expected ${n}, found ${got.get(f)}`);
  }
}

/** What a device's trust store says of the script's friends. */
const trustOf = (node: KithNode): string =>
  Array.from({ length: FRIENDS }, (_, k) => {
    const e = node.trust.entity(friend(k) as Fingerprint);
    return e === undefined ? '-' : e.revokedAt !== undefined ? 'r' : e.trusted ? 't' : '?';
  }).join('');

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
    socketTimeout: 3_600_000, // idle while the other device catches up (imapflow's default: 5 min)
  });
};

async function main(): Promise<void> {
  const missing = dovecotMissing();
  if (missing) throw new Error(`baseline not run, no ratio: ${missing}`);
  const { actions, counts: expected } = script(arg('seed', 13));
  const tally = (k: Action['kind'][]) => actions.filter((a) => k.includes(a.kind)).length;
  const root = mkdtempSync(join(tmpdir(), 'kith-bench-roaming-'));
  const results: Record<string, number> = {};
  let kithState = '';
  let crossCheck: string[] = [];
  try {
    // ---- Kith: home takes the mailbox; the laptop joins (history), goes away, comes back.
    const alice = await startEntity(['home', 'laptop']);
    try {
      const first = kithClient(alice.node('home'));
      await first.connect();
      await first.mailboxCreate('Work');
      await first.mailboxCreate('Lists');
      await first.logout();
      await alice.stop('laptop');
      // The seed: home's mail store takes the N messages while home is stopped (seed.ts), and
      // home records them as its changes when it starts again.
      await alice.stop('home');
      let t0 = performance.now();
      await seedMailStore(alice.device('home').config.dataDir, N, message);
      results.kithSeed = performance.now() - t0;
      t0 = performance.now();
      await alice.start('home');
      await alice.node('home').roaming.bridge.idle();
      results.kithRecord = performance.now() - t0;
      progress(
        `kith seed ${(results.kithSeed / 1000).toFixed(1)} s, recorded at start ${(results.kithRecord / 1000).toFixed(1)} s`,
      );
      const home = kithClient(alice.node('home'));
      await home.connect();
      await alice.start('laptop');
      t0 = performance.now();
      await alice.link('laptop', 'home');
      results.kithHistory = await convergedMs(alice.node('home'), alice.node('laptop'), t0);
      progress(`kith whole history ${(results.kithHistory / 1000).toFixed(1)} s`);
      await alice.stop('laptop');
      const t1 = performance.now();
      const trust = alice.node('home').trust;
      await apply(home, actions, (fpr, trusted) => {
        if (trusted) trust.trustFingerprint(fpr);
        else trust.revoke(fpr);
      });
      results.kithApply = performance.now() - t1;
      progress(`kith applied ${C} changes over IMAP in ${(results.kithApply / 1000).toFixed(1)} s`);
      await alice.node('home').roaming.bridge.idle();
      await alice.start('laptop');
      t0 = performance.now();
      await alice.link('laptop', 'home');
      results.kithCatchUp = await convergedMs(alice.node('home'), alice.node('laptop'), t0);
      progress(`kith converged after reconnecting in ${(results.kithCatchUp / 1000).toFixed(1)} s`);
      const laptop = kithClient(alice.node('laptop'));
      await laptop.connect();
      await expectCounts('Kith home', home, expected);
      await expectCounts('Kith laptop', laptop, expected);
      kithState = await state(home);
      if ((await state(laptop)) !== kithState) throw new Error('Kith: the two devices differ over IMAP');
      const [th, tl] = [trustOf(alice.node('home')), trustOf(alice.node('laptop'))];
      if (th !== tl) throw new Error(`Kith: trust differs: home ${th}, laptop ${tl}`);
      await home.logout();
      await laptop.logout();
    } finally {
      await alice.close();
    }

    // ---- Dovecot: instance A takes the same mailbox; `doveadm sync` to instance B over TCP (its
    // doveadm server), the same changes on A, and the sync again.
    // (A and B right under root: startDovecot opens their parent to Dovecot's unprivileged users)
    let t0 = performance.now();
    const dove = await startDovecots(
      root,
      Array.from({ length: N }, (_, i) => message(i)),
    );
    results.dovecotSeed = performance.now() - t0;
    progress(`dovecot seed (Maildir files) ${(results.dovecotSeed / 1000).toFixed(1)} s`);
    try {
      const login = (port: number) =>
        new ImapFlow({
          host: '127.0.0.1',
          port,
          secure: false,
          auth: { user: dove.user, pass: DOVECOT_PASS },
          logger: false,
          socketTimeout: 3_600_000,
        });
      const a = login(dove.portA);
      await a.connect();
      await a.mailboxCreate('Work');
      await a.mailboxCreate('Lists');
      t0 = performance.now();
      await a.mailboxOpen('INBOX'); // Dovecot indexes the Maildir here, before any timing
      progress(`dovecot indexed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      results.dsyncHistory = dove.sync();
      progress(`dsync whole history ${(results.dsyncHistory / 1000).toFixed(1)} s`);
      const t1 = performance.now();
      await apply(a, actions, () => undefined); // Dovecot has no contacts: those changes are Kith's only
      results.dovecotApply = performance.now() - t1;
      progress(`dovecot applied ${C} changes over IMAP in ${(results.dovecotApply / 1000).toFixed(1)} s`);
      results.dsyncCatchUp = dove.sync();
      progress(`dsync after the changes ${(results.dsyncCatchUp / 1000).toFixed(1)} s`);
      const b = login(dove.portB);
      await b.connect();
      await expectCounts('Dovecot A', a, expected);
      await expectCounts('Dovecot B', b, expected);
      const stateA = await state(a);
      if ((await state(b)) !== stateA) throw new Error('dsync: the two instances differ over IMAP');
      // Both systems ended in the same mailboxes (Kith lists its standard ones too: Drafts, Sent, …),
      // compared message by message; a difference is reported after the figures, not instead of them.
      const items = (text: string) =>
        new Set(
          text.split('\n').flatMap((line) => {
            const [box, rest] = [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)];
            return rest === '' ? [] : rest.split(' | ').map((m) => `${box}: ${m}`);
          }),
        );
      const [ki, di] = [items(kithState), items(stateA)];
      crossCheck = [
        ...[...ki].filter((m) => !di.has(m)).map((m) => `only Kith:    ${m}`),
        ...[...di].filter((m) => !ki.has(m)).map((m) => `only Dovecot: ${m}`),
      ];
      await a.logout();
      await b.logout();
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
      `\nRoaming on ${N} messages, ${C} changes: ${tally(['flag'])} flags, ${tally(['move'])} moves, ` +
        `${tally(['expunge'])} expunges, ${tally(['create', 'rename', 'delete'])} folder changes, ` +
        `${tally(['contact'])} contact changes (Kith only)`,
    );
    console.log('(ms; ratio = Kith / Dovecot, < 1 means Kith is faster)');
    console.log('scenario'.padEnd(52) + 'kith'.padStart(10) + 'dsync'.padStart(10) + 'ratio'.padStart(8));
    row('whole history to a new device', results.kithHistory, results.dsyncHistory);
    row(`converge after reconnecting (${C} changes)`, results.kithCatchUp, results.dsyncCatchUp);
    row(`the ${C} changes over IMAP on the online device`, results.kithApply, results.dovecotApply);
    console.log(
      `seed: Kith ${(results.kithSeed / 1000).toFixed(1)} s through home's mail store in batches of 500, ` +
        `${(results.kithRecord / 1000).toFixed(1)} s recorded as changes at home's start; Dovecot ` +
        `${(results.dovecotSeed / 1000).toFixed(1)} s (Maildir files written directly)`,
    );
    console.log(
      'verified: per-mailbox counts as the script says on all four stores; both Kith devices equal over ' +
        'IMAP (every mailbox, subject and flag) and in trust; both Dovecot instances equal over IMAP',
    );
    if (crossCheck.length === 0)
      console.log('Kith and Dovecot ended in the same mailboxes, messages and flags');
    else {
      console.log(`Kith and Dovecot ended differently (${crossCheck.length} messages):`);
      for (const line of crossCheck.slice(0, 40)) console.log(`  ${line}`);
      process.exitCode = 1;
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();

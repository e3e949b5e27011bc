// A post to a 1,000-subscriber list, delivered to all, in the same run two ways:
//   Kith      the real ListService (policy, rewrite, one SQLite row per copy) on a real SQLite file,
//             handing each copy to the real DeliveryEngine of the list's agent, which seals each
//             copy's manifest with OpenPGP (sign + encrypt, openpgp.js) to that subscriber, wraps
//             the onion and sends it through the host agent; 1,000 subscriber agents, each with its
//             own OpenPGP key, open (decrypt + verify) and store their copy as a file. All agents are
//             simulator agents (agent/sim: real engines over the in-memory transport) in this one
//             process: 1,000 real KithNodes (libp2p, Redis, SQLite, gateway each) do not fit 2 cores.
//   baseline  Debian's Postfix + mlmmj + Dovecot (test/helpers/outside-mail.ts): one SMTP post to
//             the mlmmj list, mlmmj-send fans it out through Postfix (one SMTP transaction per
//             subscriber, mlmmj's default VERP), Postfix delivers over LMTP into 1,000 Dovecot
//             Maildirs.
// Time: from handing the post in until every subscriber has it. CPU: this process's CPU for Kith;
// for the baseline, every Postfix, mlmmj and Dovecot process (utime+stime, children included).
// Kith posts twice per way: cold (each subscriber's path found by discovery first) and warm (paths
// known). Two ways, each on a fresh simulation with the same keys:
//   per-copy   each copy sealed whole (sign + encrypt per subscriber, manifest version 1)
//   wrap-once  the post signed and encrypted once, a PKESK head per copy (manifest version 2,
//              docs/protocol.md 7.8): what a hosted list does since r32
// Usage: node --import tsx bench/lists/fanout.ts [--subscribers 1000] [--size 2048]
//        [--ways per-copy,wrap-once]
import '../../common/polyfill.ts';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import * as openpgp from 'openpgp';
import { openpgpCodec } from '../../agent/payload/codec.ts';
import { ListService } from '../../agent/lists/service.ts';
import { ListStore } from '../../agent/lists/store.ts';
import { Simulation } from '../../agent/sim/sim.ts';
import { asFingerprint, asMessageId, type Fingerprint } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase } from '../../store/db.ts';
import { startOutsideMail } from '../../test/helpers/outside-mail.ts';
import { tempDir } from '../../test/helpers/tmp.ts';
import { ratio } from '../lib/stats.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const N = Number(arg('subscribers', '1000'));
const SIZE = Number(arg('size', '2048'));
const WAYS = arg('ways', 'per-copy,wrap-once').split(',') as Way[];
type Way = 'per-copy' | 'wrap-once';
const TICK = 100; // clock ticks per second in /proc (USER_HZ)

const body = 'All subscribers get this post.\r\n'.repeat(Math.ceil(SIZE / 32)).slice(0, SIZE);
const dir = tempDir('kith-bench-lists-');
const waitUntil = async (done: () => boolean, what: string, timeoutMs = 600_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

async function makeKeys(): Promise<openpgp.PrivateKey[]> {
  return Promise.all(
    Array.from({ length: N + 2 }, (_, i) =>
      openpgp
        .generateKey({
          type: 'ecc',
          curve: 'curve25519Legacy',
          userIDs: [{ name: `e${i}`, email: `e${i}@bench.kith` }],
          format: 'object',
        })
        .then((k) => k.privateKey),
    ),
  );
}

async function kith(keys: openpgp.PrivateKey[], way: Way): Promise<{ cold: Run; warm: Run }> {
  const t0 = performance.now();
  const fps = keys.map((k) => asFingerprint(k.getFingerprint()));
  const publics = new Map(keys.map((k, i) => [fps[i], k.toPublic()]));
  const sim = new Simulation({
    quiesce: false,
    customize: (i) => ({
      fingerprint: fps[i],
      codec: openpgpCodec({ entityKey: keys[i], publicKey: async (f) => publics.get(f) }),
    }),
  });
  const [listAgent, host, ...subscribers] = sim.addAgents(N + 2);
  sim.connect(listAgent, host);
  for (const s of subscribers) sim.connect(host, s);
  const stored = join(dir.path, `kith-mail-${way}`);
  const received = subscribers.map(() => 0);
  subscribers.forEach((s, i) => {
    const box = join(stored, String(i));
    mkdirSync(box, { recursive: true });
    // Each subscriber keeps its copy as a file, as Dovecot does in its Maildir.
    const inbox = s.inbox;
    inbox.push = (...items) => {
      for (const m of items) writeFileSync(join(box, `${m.id}.eml`), m.data ?? '');
      received[i] += items.length;
      return Array.prototype.push.apply(inbox, items);
    };
  });
  await sim.start();
  const db = openDatabase(join(dir.path, `list-${way}.db`));
  const store = new ListStore(db);
  store.saveSettings({
    name: 'dev',
    email: 'dev@lists.kith',
    policy: 'members',
    chat: false,
    maxBytes: 10 * 1024 * 1024,
    summaryAfterMs: 3_600_000,
  });
  subscribers.forEach((s, i) =>
    store.addMember({ fingerprint: s.entity, email: `s${i}@bench.kith`, name: `S${i}`, moderator: false }),
  );
  const service = new ListService({
    node: {
      identity: { fingerprint: listAgent.entity, email: 'dev@lists.kith', name: 'dev' },
      trust: { entity: () => undefined },
      delivery: {
        submit: (m) =>
          listAgent.engine.send({
            id: m.id,
            to: m.to,
            source: { kind: 'file', path: m.rawPath },
            ...(m.shared ? { shared: m.shared } : {}),
          }),
        // Without shareBody the list seals each copy whole (ListService.shareBody).
        ...(way === 'wrap-once'
          ? { shareBody: (raw: string, body: string) => listAgent.engine.shareBody(raw, body) }
          : {}),
      },
    },
    store,
    archive: { receive: async () => undefined, status: async () => undefined },
    postsDir: join(dir.path, `posts-${way}`),
    log: silentLogger(),
  });
  await service.start();
  console.log(
    `kith ${way}: ${N + 2} simulator agents ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  let seq = 0;
  const post = async (): Promise<Run> => {
    const want = received.map((r) => r + 1);
    const poster = subscribers[0];
    const raw = Buffer.from(
      `From: S0 <s0@bench.kith>\r\nTo: dev@lists.kith\r\nSubject: post ${++seq}\r\nMessage-ID: <p${seq}@bench>\r\n\r\n${body}`,
    );
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    await service.receive({
      id: asMessageId(seq.toString(16).padStart(32, '0')),
      raw,
      sender: { fingerprint: poster.entity as Fingerprint },
      verified: true,
      receivedAt: new Date(),
    });
    await waitUntil(() => received.every((r, i) => r >= want[i]), 'every subscriber');
    const ms = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    return { ms, cpuMs: (cpu.user + cpu.system) / 1000 };
  };
  const cold = await post();
  const warm = await post();
  // The way asked for is the way taken: one shared body per post, or none.
  const bodies = readdirSync(join(dir.path, `posts-${way}`)).filter((f) => f.endsWith('.body')).length;
  if (bodies !== (way === 'wrap-once' ? 2 : 0))
    throw new Error(`${way}: ${bodies} shared bodies for 2 posts`);
  await service.stop();
  await sim.stop();
  db.close();
  return { cold, warm };
}

interface Run {
  ms: number;
  cpuMs: number;
}

/** CPU ticks of a process tree (utime+stime, and cutime+cstime of children it reaped). */
function treeTicks(roots: number[]): number {
  const ps = execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' }).trim().split('\n');
  const tree = new Set(roots);
  for (let grew = true; grew;) {
    grew = false;
    for (const line of ps) {
      const [pid, ppid] = line.trim().split(/\s+/).map(Number);
      if (tree.has(ppid) && !tree.has(pid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  let ticks = 0;
  for (const pid of tree) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // exited between ps and the read: its time is in its parent's cutime once reaped
    }
  }
  return ticks;
}

async function baseline(): Promise<Run> {
  const outside = await startOutsideMail(join(dir.path, 'outside'));
  try {
    const users = Array.from({ length: N }, (_, i) => `s${String(i).padStart(4, '0')}`);
    outside.subscribeMany(users.map((u) => `${u}@outside.test`));
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: outside.smtpPort,
      secure: false,
      ignoreTLS: true,
    });
    const has = (u: string) => {
      const d = join(outside.mailDir, u);
      return ['new', 'cur'].some((s) => existsSync(join(d, s)) && readdirSync(join(d, s)).length > 0);
    };
    const ticks0 = treeTicks(outside.roots());
    const start = performance.now();
    await transport.sendMail({ from: 's0000@outside.test', to: outside.list, subject: 'post', text: body });
    let left = users;
    await waitUntil(() => (left = left.filter((u) => !has(u))).length === 0, 'every Maildir');
    const ms = performance.now() - start;
    const cpuMs = ((treeTicks(outside.roots()) - ticks0) * 1000) / TICK;
    transport.close();
    return { ms, cpuMs };
  } finally {
    await outside.stop();
  }
}

try {
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`${N} subscribers, post body ${SIZE} bytes, load average ${load} (shared machine)`);
  const base = await baseline();
  console.log(
    `baseline Postfix + mlmmj + Dovecot: ${(base.ms / 1000).toFixed(2)} s, CPU ${(base.cpuMs / 1000).toFixed(2)} s`,
  );
  const k0 = performance.now();
  const keys = await makeKeys();
  console.log(`kith: ${N + 2} OpenPGP keys in ${((performance.now() - k0) / 1000).toFixed(1)} s`);
  for (const way of WAYS) {
    const { cold, warm } = await kith(keys, way);
    for (const [label, r] of [
      [`kith ${way} cold (discovery)`, cold],
      [`kith ${way} warm (paths known)`, warm],
    ] as const) {
      console.log(
        `${label}: ${(r.ms / 1000).toFixed(2)} s (${ratio(r.ms, base.ms)}), CPU ${(r.cpuMs / 1000).toFixed(2)} s (${ratio(r.cpuMs, base.cpuMs)})`,
      );
    }
  }
  const end = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`load average at the end ${end}`);
} finally {
  dir.remove();
}

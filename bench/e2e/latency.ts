// Mail latency and rate end to end, with real protocols at both ends: clients submit over SMTP,
// another watches the recipient's INBOX over IMAP (NOOP every POLL_MS ms, the same for both).
//
// Kith: alice's gateway (SMTP) → alice's agent → carol → dave → bob's agent → bob's gateway (IMAP):
// 3 links between 4 agents, each agent a separate process with its own redis-server; the hops
// counted are the 3 agent-to-agent links the onion crosses.
// Baseline: Postfix (SMTP) → LMTP → Dovecot (IMAP) on the same machine, from Debian's packages.
//
// Latency: from the 250 reply to DATA until the watcher's poll first shows the message, one
// message at a time. Rate: a burst of messages submitted back to back over 1, 4, 16 … SMTP
// connections at once (each connection sends its share one after the other), counted until the
// last one is visible. For Kith it also prints, per burst, alice's event-loop busy share and CPU
// time, and fsync/fdatasync calls per message of each agent (perf stat, when perf is there).
// Run: node --import tsx bench/e2e/latency.ts [--messages 100] [--burst 300] [--connections 1,4,16]
//        [--profile DIR]   (every agent under node --cpu-prof, profiles written to DIR on exit)
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { onInterrupt } from '../lib/cleanup.ts';
import { startKithLine, type KithAgent } from '../lib/kith-line.ts';
import { BASELINE_PASS, MTA_USER, mtaMissing, startMta } from '../lib/mail-servers.ts';
import { header, percentile, row } from '../lib/stats.ts';
import { countSyncs, syncCountMissing } from '../lib/syscalls.ts';
import { POLL_MS, Submitter, Watcher, type Account } from './mail.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const MESSAGES = Number(arg('messages') ?? 100);
const BURST = Number(arg('burst') ?? 300);
const CONNECTIONS = (arg('connections') ?? '1,4,16').split(',').map(Number);
const PROFILE = arg('profile');

interface Burst {
  connections: number;
  perSecond: number;
  /** The SMTP side alone: 250 replies per second during the burst. */
  submittedPerSecond: number;
  /** Kith only: what alice's process and every agent did meanwhile. */
  inside?: string[];
}

interface Figures {
  p50: number;
  p99: number;
  bursts: Burst[];
}

/** Hooks around each burst, to look inside Kith's processes while it runs. */
interface Probe {
  start(): Promise<void>;
  stop(messages: number): Promise<string[]>;
}

/** The same measurement against any SMTP server + IMAP mailbox pair. */
async function measure(
  label: string,
  smtp: Account,
  imap: Account,
  from: string,
  to: string,
  probe?: Probe,
): Promise<Figures> {
  const submitters = Array.from({ length: Math.max(...CONNECTIONS) }, () => new Submitter(smtp, from, to));
  const watcher = await Watcher.open(imap);
  try {
    let n = watcher.count;
    // Warm-up: Kith's route discovery and Postfix's first LMTP connection (one message, waited
    // for: discovery under load can take a while), then every connection once.
    await submitters[0]!.send(n++);
    await watcher.until(n, 180_000);
    for (const s of submitters.slice(1)) await s.send(n++);
    await watcher.until(n);
    process.stderr.write(`  ${label}: ${MESSAGES} messages one at a time...\n`);
    const latencies: number[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      await submitters[0]!.send(n);
      const accepted = performance.now();
      const seen = await watcher.until(++n);
      latencies.push(Math.max(0, seen - accepted));
    }
    const bursts: Burst[] = [];
    for (const connections of CONNECTIONS) {
      process.stderr.write(`  ${label}: ${BURST} messages back to back on ${connections} connections...\n`);
      await probe?.start();
      const t0 = performance.now();
      let next = n;
      const end = n + BURST;
      await Promise.all(
        submitters.slice(0, connections).map(async (s) => {
          while (next < end) await s.send(next++);
        }),
      );
      const submitted = performance.now();
      const last = await watcher.until(end, 300_000);
      const inside = await probe?.stop(BURST);
      n = end;
      bursts.push({
        connections,
        perSecond: BURST / ((last - t0) / 1000),
        submittedPerSecond: BURST / ((submitted - t0) / 1000),
        inside,
      });
    }
    return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), bursts };
  } finally {
    for (const s of submitters) s.close();
    await watcher.close();
  }
}

/** Alice's event loop and CPU, and each agent's fsyncs, over one burst. */
function kithProbe(agents: KithAgent[]): Probe {
  const noPerf = syncCountMissing();
  if (noPerf) process.stderr.write(`  (fsyncs not counted: ${noPerf})\n`);
  let counter: ReturnType<typeof countSyncs> | undefined;
  const alice = agents[0]!;
  const pids = agents.flatMap((a) => [a.pid, ...(a.redisPid ? [a.redisPid] : [])]);
  return {
    async start() {
      await alice.call('loop');
      if (!noPerf) counter = countSyncs(pids);
    },
    async stop(messages) {
      const loop = await alice.call<{ utilization: number; cpuMs: number }>('loop');
      const out = [
        `alice's event loop ${(loop.utilization * 100).toFixed(0)}% busy, CPU ${(loop.cpuMs / messages).toFixed(1)} ms/message`,
      ];
      if (counter) {
        const counts = await counter.stop();
        out.push(
          'fsync+fdatasync per message: ' +
            agents
              .map((a) => {
                const node = (counts.get(a.pid) ?? 0) / messages;
                const redis = a.redisPid ? (counts.get(a.redisPid) ?? 0) / messages : 0;
                return `${a.name} ${node.toFixed(1)} (+redis ${redis.toFixed(1)})`;
              })
              .join(', '),
        );
      }
      return out;
    },
  };
}

async function kith(dir: string): Promise<Figures> {
  const profileDir = PROFILE ? resolve(PROFILE) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const { agents, stop } = await startKithLine(dir, {
    execArgv: profileDir ? (name) => ['--cpu-prof', '--cpu-prof-dir', join(profileDir, name)] : undefined,
  });
  try {
    const alice = agents[0]!;
    const bob = agents[agents.length - 1]!;
    const account = (s: typeof alice.settings, p: 'smtp' | 'imap'): Account => ({
      host: s[p].host,
      port: s[p].port,
      user: s.user,
      pass: s.pass,
    });
    return await measure(
      'kith',
      account(alice.settings, 'smtp'),
      account(bob.settings, 'imap'),
      alice.email,
      bob.email,
      kithProbe(agents),
    );
  } finally {
    await stop();
  }
}

async function mta(dir: string): Promise<Figures> {
  const server = await startMta(dir);
  const done = onInterrupt(() => server.stop());
  try {
    return await measure(
      'postfix+dovecot',
      { host: '127.0.0.1', port: server.smtpPort },
      { host: '127.0.0.1', port: server.imapPort, user: MTA_USER, pass: BASELINE_PASS },
      'sender@example.net',
      MTA_USER,
    );
  } finally {
    done();
    await server.stop();
  }
}

async function main(): Promise<void> {
  // No ratio, no result: fail before the long part so that `npm run bench` does not report ok.
  const missing = mtaMissing();
  if (missing) {
    console.error(`baseline not run, no ratio: ${missing}`);
    process.exitCode = 1;
    return;
  }
  const root = mkdtempSync(join(tmpdir(), 'kith-bench-latency-'));
  const forget = onInterrupt(async () => rmSync(root, { recursive: true, force: true }));
  try {
    const k = await kith(join(root, 'kith'));
    const b = await mta(join(root, 'mta'));
    console.log(
      header(
        `Mail end to end, SMTP 250 → visible over IMAP (poll every ${POLL_MS} ms): Kith across 3 links vs Postfix → LMTP → Dovecot`,
      ),
    );
    console.log(row(`latency p50 (${MESSAGES} messages, one at a time)`, k.p50, b.p50, 'ms'));
    console.log(row(`latency p99`, k.p99, b.p99, 'ms'));
    k.bursts.forEach((kb, i) => {
      const bb = b.bursts[i]!;
      const c = `${kb.connections} connection${kb.connections === 1 ? '' : 's'}`;
      console.log(row(`messages/s (${BURST} in a burst, ${c})`, kb.perSecond, bb.perSecond, '/s'));
      console.log(
        row(`  of which SMTP acceptance alone (250s/s)`, kb.submittedPerSecond, bb.submittedPerSecond, '/s'),
      );
    });
    console.log('\nInside Kith during each burst:');
    for (const kb of k.bursts) console.log(`  ${kb.connections} conn: ${(kb.inside ?? []).join('; ')}`);
    if (PROFILE) {
      console.log(
        `\nCPU profiles of every agent: ${resolve(PROFILE)}/<name>/CPU.*.<pid>.0.*.cpuprofile is the main ` +
          "thread (the others: tsx's loader thread); read one with bench/lib/cpuprofile.ts",
      );
    }
  } finally {
    forget();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();

// Mail latency and rate end to end, with real protocols at both ends: a client submits over SMTP,
// another watches the recipient's INBOX over IMAP (NOOP every POLL_MS ms, the same for both).
//
// Kith: alice's gateway (SMTP) → alice's agent → carol → dave → bob's agent → bob's gateway (IMAP):
// 3 links between 4 agents, each agent a separate process with its own redis-server; the hops
// counted are the 3 agent-to-agent links the onion crosses.
// Baseline: Postfix (SMTP) → LMTP → Dovecot (IMAP) on the same machine, from Debian's packages.
//
// Latency: from the 250 reply to DATA until the watcher's poll first shows the message, one
// message at a time. Rate: messages submitted back to back on one connection, counted until the
// last one is visible.
// Run: node --import tsx bench/e2e/latency.ts [--messages 100]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onInterrupt } from '../lib/cleanup.ts';
import { startKithLine } from '../lib/kith-line.ts';
import { header, percentile, row } from '../lib/stats.ts';
import { POLL_MS, Submitter, Watcher, type Account } from './mail.ts';
import { MTA_PASS, MTA_USER, mtaMissing, startMta } from './mta.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const MESSAGES = arg('messages', 100);
const BURST = arg('burst', 300);

interface Figures {
  p50: number;
  p99: number;
  perSecond: number;
  /** The SMTP side alone: 250 replies per second during the burst. */
  submittedPerSecond: number;
}

/** The same measurement against any SMTP server + IMAP mailbox pair. */
async function measure(
  label: string,
  smtp: Account,
  imap: Account,
  from: string,
  to: string,
): Promise<Figures> {
  const submitter = new Submitter(smtp, from, to);
  const watcher = await Watcher.open(imap);
  try {
    let n = watcher.count;
    // Warm-up: connections, Kith's route discovery, Postfix's first LMTP connection.
    for (let i = 0; i < 3; i++) {
      await submitter.send(n);
      await watcher.until(++n);
    }
    process.stderr.write(`  ${label}: ${MESSAGES} messages one at a time...\n`);
    const latencies: number[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      await submitter.send(n);
      const accepted = performance.now();
      const seen = await watcher.until(++n);
      latencies.push(Math.max(0, seen - accepted));
    }
    process.stderr.write(`  ${label}: ${BURST} messages back to back...\n`);
    const t0 = performance.now();
    for (let i = 0; i < BURST; i++) await submitter.send(n + i);
    const submitted = performance.now();
    const last = await watcher.until(n + BURST, 300_000);
    return {
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      perSecond: BURST / ((last - t0) / 1000),
      submittedPerSecond: BURST / ((submitted - t0) / 1000),
    };
  } finally {
    submitter.close();
    await watcher.close();
  }
}

async function kith(dir: string): Promise<Figures> {
  const { agents, stop } = await startKithLine(dir);
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
      { host: '127.0.0.1', port: server.imapPort, user: MTA_USER, pass: MTA_PASS },
      'sender@example.net',
      MTA_USER,
    );
  } finally {
    done();
    await server.stop();
  }
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'kith-bench-latency-'));
  const forget = onInterrupt(async () => rmSync(root, { recursive: true, force: true }));
  try {
    const k = await kith(join(root, 'kith'));
    const missing = mtaMissing();
    if (missing) {
      console.log(
        `kith: p50 ${k.p50.toFixed(1)} ms, p99 ${k.p99.toFixed(1)} ms, ${k.perSecond.toFixed(1)} msg/s`,
      );
      // No ratio, no result: fail so that `npm run bench` does not report ok.
      console.error(`\nbaseline not run, no ratio: ${missing} (or bin/setup --bench)`);
      process.exitCode = 1;
      return;
    }
    const b = await mta(join(root, 'mta'));
    console.log(
      header(
        `Mail end to end, SMTP 250 → visible over IMAP (poll every ${POLL_MS} ms): Kith across 3 links vs Postfix → LMTP → Dovecot`,
      ),
    );
    console.log(row(`latency p50 (${MESSAGES} messages, one at a time)`, k.p50, b.p50, 'ms'));
    console.log(row(`latency p99`, k.p99, b.p99, 'ms'));
    console.log(row(`messages/s (${BURST} back to back, 1 connection)`, k.perSecond, b.perSecond, '/s'));
    console.log(
      row(`  of which SMTP acceptance alone (250s/s)`, k.submittedPerSecond, b.submittedPerSecond, '/s'),
    );
  } finally {
    forget();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();

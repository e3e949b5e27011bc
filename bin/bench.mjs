#!/usr/bin/env node
// `npm run bench`: runs every benchmark in bench/ in turn (each in its own process, which stops
// everything it starts) and prints their figures, then how long each took.
//   npm run bench                       all, full size (several minutes: two 1 GiB transfers)
//   npm run bench -- --quick            smaller sizes, for a quick look
//   npm run bench -- --only imap,e2e-latency
//   npm run bench -- --only soak       the 2-hour soak (bench/soak), run only when named
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { URL, fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const quick = process.argv.includes('--quick');
const onlyIndex = process.argv.indexOf('--only');
const only = onlyIndex >= 0 ? process.argv[onlyIndex + 1].split(',') : undefined;

/** The baselines' programs (Debian's packages), started by the benchmarks that compare with them. */
const DOVECOT = ['/usr/sbin/dovecot'];
const MTA = ['/usr/sbin/postfix', '/usr/sbin/dovecot', '/usr/lib/dovecot/lmtp'];
const INSTALL =
  'install the baselines: sudo apt-get install postfix dovecot-imapd dovecot-lmtpd (or bin/setup --bench)';

/** name, script, arguments for a full run, arguments for --quick, programs the baseline needs. */
const BENCHMARKS = [
  ['imap', 'bench/imap/run.ts', [], ['2000'], DOVECOT],
  ['discovery', 'bench/discovery/run.ts', [], ['--sizes', '1000', '--trials', '10'], []],
  ['delivery', 'bench/delivery/run.ts', [], ['--messages', '100', '--mib', '100'], []],
  ['e2e-latency', 'bench/e2e/latency.ts', [], ['--messages', '30', '--burst', '100'], MTA],
  ['e2e-large', 'bench/e2e/large.ts', [], ['--mib', '100'], []],
  ['soak', 'bench/soak/run.ts', [], ['--minutes', '5'], []],
  ['spam', 'bench/spam/run.ts', [], ['--agents', '2500', '--weeks', '2'], []],
];
/** Run only when named in --only: two hours is not part of "every benchmark". */
const ON_REQUEST = new Set(['soak']);

function runOne(script, args) {
  return new Promise((resolve) => {
    // bench/soak reads the demo's heap over the inspector's WebSocket: global in Node 22, a flag in 20
    const websocket = Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-websocket'] : [];
    const child = spawn(process.execPath, [...websocket, '--import', 'tsx', script, ...args], {
      cwd: root,
      stdio: 'inherit',
    });
    const forward = (signal) => child.kill(signal);
    process.once('SIGINT', forward);
    process.once('SIGTERM', forward);
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

const summary = [];
for (const [name, script, full, small, needs] of BENCHMARKS) {
  if (only ? !only.includes(name) : ON_REQUEST.has(name)) continue;
  const args = quick ? small : full;
  console.log(`\n=== ${name}: ${script} ${args.join(' ')}`);
  // A figure without its baseline is no result: a missing baseline fails, it is not skipped.
  const missing = needs.filter((program) => !existsSync(program));
  if (missing.length > 0) {
    const why = `baseline missing (${missing.join(', ')}): ${INSTALL}`;
    console.error(`${name}: ${why}`);
    summary.push({ name, code: 1, seconds: 0, why });
    continue;
  }
  const t0 = Date.now();
  const code = await runOne(script, args);
  summary.push({ name, code, seconds: (Date.now() - t0) / 1000 });
}
console.log('\n=== summary');
for (const s of summary) {
  console.log(
    `${s.name.padEnd(14)} ${s.code === 0 ? 'ok' : `FAILED (${s.why ?? `exit ${s.code}`})`}  ${s.seconds.toFixed(0)} s`,
  );
}
process.exitCode = summary.some((s) => s.code !== 0) ? 1 : 0;

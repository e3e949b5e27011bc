// The group commit's fsync on the event loop (synchronous=FULL, the design before bench/RESULTS.md
// 10.6) against the fsync of the WAL in the thread pool (store/group-commit.ts now), in the same
// run on the same disk. Each of C concurrent "messages" makes the commits a message makes at the
// sender one after the other (STEPS writes of a ~1 KB row, each awaited: the submission, the
// attempt, the hop records, the finish, the status email ...), and between them does a little
// CPU work on the loop (as the crypto and bookkeeping do). Printed: messages/s, how busy the event
// loop was, and commits and syncs per message; the ratio is the thread-pool design against the
// on-loop one.
// Run: node --import tsx bench/store/group-commit.ts [--messages 400] [--concurrency 1,4,16] [--steps 6]
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openDatabase } from '../../store/db.ts';
import { GroupCommit, fdatasyncFile } from '../../store/group-commit.ts';
import { header, row } from '../lib/stats.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const MESSAGES = Number(arg('messages') ?? 400);
const CONCURRENCY = (arg('concurrency') ?? '1,4,16').split(',').map(Number);
const STEPS = Number(arg('steps') ?? 6);

interface Figures {
  perSecond: number;
  loopBusy: number;
  commitsPerMessage: number;
  syncsPerMessage: number;
}

/** ~0.3 ms of CPU on the loop: what a message's crypto and bookkeeping cost between commits. */
function work(): void {
  let h = randomBytes(64);
  for (let i = 0; i < 200; i++) h = createHash('sha256').update(h).digest();
}

async function run(dir: string, onLoop: boolean, concurrency: number): Promise<Figures> {
  const db = openDatabase(join(dir, `${onLoop ? 'loop' : 'pool'}-${concurrency}.db`));
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, step INTEGER NOT NULL, body BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO t (step, body) VALUES (?, ?)');
  const group = new GroupCommit(db, onLoop ? null : fdatasyncFile);
  const body = randomBytes(1024);
  let next = 0;
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < MESSAGES) {
        next++;
        for (let step = 0; step < STEPS; step++) {
          work();
          await group.run(() => insert.run(step, body));
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const elu = performance.eventLoopUtilization(elu0);
  db.close();
  return {
    perSecond: MESSAGES / seconds,
    loopBusy: elu.utilization,
    commitsPerMessage: group.stats.commits / MESSAGES,
    // On the loop every commit is one WAL fsync (synchronous=FULL).
    syncsPerMessage: (onLoop ? group.stats.commits : group.stats.syncs) / MESSAGES,
  };
}

const dir = mkdtempSync(join(tmpdir(), 'kith-bench-group-commit-'));
try {
  console.log(
    header(
      `Group commit, ${MESSAGES} messages of ${STEPS} awaited commits each: WAL fsync in the thread pool vs on the event loop (baseline)`,
    ),
  );
  for (const c of CONCURRENCY) {
    // Alternating, so that a change of the machine's load hits both.
    const base = await run(dir, true, c);
    const pool = await run(dir, false, c);
    const label = `${c} at once`;
    console.log(row(`messages/s, ${label}`, pool.perSecond, base.perSecond, '/s'));
    console.log(row(`  event loop busy`, pool.loopBusy * 100, base.loopBusy * 100, '%', 0));
    console.log(row(`  commits per message`, pool.commitsPerMessage, base.commitsPerMessage, '', 2));
    console.log(row(`  WAL fsyncs per message`, pool.syncsPerMessage, base.syncsPerMessage, '', 2));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

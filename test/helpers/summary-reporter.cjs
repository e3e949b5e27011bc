/* global setInterval, clearInterval */
// Prints one plain closing line that CI systems read: "tests: N passed, N failed".
//
// It also names a test file that runs far longer than any should (STUCK_AFTER_MS). Jest's
// testTimeout cannot end a file whose worker never returns to its event loop, and then CI shows
// nothing until its own limit kills the run; this reporter runs in Jest's parent process, so it
// still speaks. The warning changes no result.
const STUCK_AFTER_MS = Number(process.env.KITH_TEST_STUCK_WARN_MS) || 10 * 60_000;
const REPEAT_MS = Math.min(5 * 60_000, STUCK_AFTER_MS);

class SummaryReporter {
  constructor() {
    this.running = new Map(); // test file -> { since, warned }
    this.timer = undefined;
  }

  onRunStart() {
    this.timer = setInterval(() => this.warnStuck(Date.now()), Math.min(30_000, STUCK_AFTER_MS / 2));
    this.timer.unref();
  }

  onTestFileStart(test) {
    this.running.set(test.path, { since: Date.now(), warned: 0 });
  }

  onTestFileResult(test) {
    this.running.delete(test.path);
  }

  warnStuck(now) {
    for (const [path, file] of this.running) {
      const ran = now - file.since;
      if (ran < STUCK_AFTER_MS || now - file.warned < REPEAT_MS) continue;
      file.warned = now;
      const relative = path.startsWith(process.cwd()) ? path.slice(process.cwd().length + 1) : path;
      process.stdout.write(`\nstill running after ${Math.round(ran / 1000)} s: ${relative}\n`);
    }
  }

  onRunComplete(_contexts, results) {
    clearInterval(this.timer);
    const skipped = results.numPendingTests + results.numTodoTests;
    const line = `tests: ${results.numPassedTests} passed, ${results.numFailedTests} failed`;
    process.stdout.write(`\n${line}${skipped ? `, ${skipped} skipped` : ''}\n`);
  }
}
module.exports = SummaryReporter;

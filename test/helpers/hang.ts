/**
 * The bound of every test-local wait that only detects a hang (an `until`, a read helper, a
 * "did not start" timer): a little under Jest's 300 s per-test timeout, the suite's one hang
 * detector (docs/architecture.md, "How the suite stays deterministic"). A tighter bound turns a
 * slow, loaded machine into a red test; this one still fails with the wait's own message before
 * Jest's generic one. Timeouts that are product configuration, or whose firing is what a test
 * asserts, are not hang detectors and do not use it.
 */
export const HANG_MS = 280_000;

/**
 * Jest's bound for a fault case (test/faults): a burst or a fault of its own, bounded by HANG_MS,
 * then the delivery wait, bounded by HANG_MS too; under Jest's default 300 s the case was ended
 * before its wait could fail and print the nodes' stderr (a CI run showed only "Exceeded timeout").
 */
export const FAULT_CASE_MS = 2 * HANG_MS + 30_000;

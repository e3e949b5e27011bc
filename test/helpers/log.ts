import { createLogger, silentLogger, type Logger } from '../../common/logger.ts';

/**
 * The logger test networks give their nodes: silent, unless KITH_TEST_LOG names a file, then every
 * node's debug log goes there (one JSON line each, `name` says which node) — for finding out why a
 * run failed, e.g. `KITH_TEST_LOG=/tmp/kith.log npm run jest -- test/lists/moderation.test.ts`.
 */
export function testLogger(): Logger {
  const file = process.env.KITH_TEST_LOG;
  return file ? createLogger({ level: 'debug', destination: file }) : silentLogger();
}

import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { KithError } from '../common/errors.ts';

/**
 * One running node per data directory: two would corrupt each other's queue and mailbox
 * state. The lock file holds the pid; a lock whose process is gone is stale and taken over.
 */
export function lockDataDir(root: string): () => void {
  const file = join(root, 'node.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new KithError(
          'ERR_NODE_RUNNING',
          `another Kith node (pid ${pid}) is running on ${root}`,
          'stop it first, or use another --data-dir',
        );
      }
      rmSync(file, { force: true });
    }
  }
  throw new KithError('ERR_NODE_RUNNING', `cannot lock ${root}`, 'remove node.lock if no node runs there');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

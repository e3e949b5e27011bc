import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KithError } from '../common/errors.ts';

/** Where each thing lives inside a node's data directory (docs/operations.md). */
export interface DataPaths {
  root: string;
  database: string;
  blobs: string;
  redis: string;
  tls: string;
  /** IMAP literals while they arrive (gateway/imap/parser.ts); what a crash left is removed at start. */
  spool: string;
}

export function dataPaths(root: string): DataPaths {
  return {
    root,
    database: join(root, 'kith.db'),
    blobs: join(root, 'blobs'),
    redis: join(root, 'redis'),
    tls: join(root, 'tls'),
    spool: join(root, 'spool'),
  };
}

/**
 * Creates the data directory (mode 0700) or checks an existing one: it must be ours and
 * writable, because it holds the keys. Refusing early avoids damaging someone else's files.
 */
export function prepareDataDir(root: string): DataPaths {
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new KithError(
      'ERR_DATA_DIR',
      `cannot create the data directory ${root}: ${(err as Error).message}`,
      'choose another --data-dir or fix the permissions of its parent',
    );
  }
  const info = statSync(root);
  if (!info.isDirectory()) {
    throw new KithError('ERR_DATA_DIR', `${root} is not a directory`, 'choose another --data-dir');
  }
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) {
    throw new KithError(
      'ERR_DATA_DIR_OWNER',
      `the data directory ${root} belongs to user ${info.uid}, not to you (${uid})`,
      'run Kith as the owner of that directory, or choose another --data-dir',
    );
  }
  try {
    accessSync(root, constants.W_OK | constants.R_OK | constants.X_OK);
  } catch {
    throw new KithError(
      'ERR_DATA_DIR',
      `the data directory ${root} is not writable`,
      'fix its permissions (chmod 700)',
    );
  }
  const paths = dataPaths(root);
  for (const dir of [paths.blobs, paths.redis, paths.tls]) mkdirSync(dir, { recursive: true, mode: 0o700 });
  return paths;
}

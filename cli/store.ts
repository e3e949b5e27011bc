import { existsSync } from 'node:fs';
import { KithError } from '../common/errors.ts';
import type { Config } from '../config/schema.ts';
import { openDatabase, type Db } from '../store/db.ts';
import { dataPaths, prepareDataDir } from '../store/datadir.ts';

/** Opens the database of an initialised data directory, or says to run `kith init`. */
export function openExistingDatabase(config: Config): Db {
  const paths = dataPaths(config.dataDir);
  if (!existsSync(paths.database)) {
    throw new KithError(
      'ERR_NO_IDENTITY',
      `no Kith node in ${config.dataDir}`,
      'run `kith init` (or `kith start`, which creates one), or pass --data-dir',
    );
  }
  prepareDataDir(config.dataDir);
  return openDatabase(paths.database);
}

// The roaming bench's seed: N messages into a stopped device's INBOX through its own mail store,
// many appends per group commit, instead of N IMAP APPENDs (each its own fsynced commit on the
// gateway and a change of its own in the sync log: 37 minutes for 20,000 on the shared machine).
// The node records them when it starts, as it records any mail that came in while sync was not
// running (agent/sync/bridge.ts, observeAllEntries: changes of 100 adds), so home ends with the
// same mailbox and change log as a user's APPENDs would make, in far fewer commits.
import { silentLogger } from '../../common/logger.ts';
import { createMailStore } from '../../gateway/mailbox/index.ts';
import { BlobStore } from '../../store/blobs.ts';
import { openDatabase } from '../../store/db.ts';
import { dataPaths } from '../../store/datadir.ts';

/** Appends in flight together (they share the store's group commit: one fsync per batch). */
const BATCH = 500;

/** Appends `count` messages to INBOX of the (stopped) node whose data directory is `dataDir`. */
export async function seedMailStore(
  dataDir: string,
  count: number,
  message: (i: number) => Buffer,
): Promise<void> {
  const paths = dataPaths(dataDir);
  const db = openDatabase(paths.database);
  const blobs = new BlobStore(paths.blobs);
  try {
    await blobs.init();
    const store = createMailStore({ db, blobs, log: silentLogger() });
    await store.start();
    try {
      for (let i = 0; i < count; i += BATCH) {
        const batch = Array.from({ length: Math.min(BATCH, count - i) }, (_, k) =>
          store.append({ mailbox: 'INBOX', raw: message(i + k), flags: [] }),
        );
        await Promise.all(batch);
      }
      const got = store.status('INBOX').messages;
      if (got < count) throw new Error(`seed: INBOX holds ${got} messages, expected at least ${count}`);
    } finally {
      await store.stop();
    }
  } finally {
    db.close();
  }
}

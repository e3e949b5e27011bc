import type { Logger } from '../../common/logger.ts';
import type { BlobStore } from '../../store/blobs.ts';
import type { Db } from '../../store/db.ts';
import { createMailStore } from '../../gateway/mailbox/index.ts';
import type { MailDrop } from '../../gateway/status/index.ts';

/** The real mailbox store (gateway/mailbox) as the sink's MailDrop, plus a way to read INBOX back. */
export async function openInbox(db: Db, blobs: BlobStore, log: Logger) {
  const store = createMailStore({ db, blobs, log });
  await store.start();
  const drop: MailDrop = store;
  return {
    drop,
    /** Every message in INBOX, oldest first, as stored. */
    async messages(): Promise<Buffer[]> {
      const inbox = store.mailbox('INBOX');
      const uids = store.entries(inbox.id).map((e) => e.uid);
      const rows = store.messages(inbox.id, uids, { raw: true });
      return Promise.all(rows.map((r) => store.readRaw(r)));
    },
    stop: () => store.stop(),
  };
}

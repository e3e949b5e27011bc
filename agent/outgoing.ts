import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { MessageId } from '../common/ids.ts';
import type { Logger } from '../common/logger.ts';

/** Names the node gives what it keeps in outgoing/: the message id (32 hex digits). */
const OUTGOING_NAME = /^[0-9a-f]{32}$/;

/**
 * `<data dir>/outgoing/<message id>` holds what a message is read from while it is sent (`kith
 * send`'s copy or its hard link to the user's file, a live stream's segment; docs/protocol.md 8).
 * Once the message is delivered or finally failed it is never read again: it goes, so a hard
 * link no longer keeps a deleted file's blocks and copies do not pile up. Removing a hard link
 * removes only that name: the user's file where it lies is untouched.
 */
export class OutgoingFiles {
  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** The message ended (delivered, failed): its file in outgoing/ goes. */
  async finished(id: MessageId): Promise<void> {
    await rm(join(this.dir, id), { force: true }).catch((err: Error) =>
      this.log.warn({ id, err: err.message }, 'removing a finished message from outgoing/ failed'),
    );
  }

  /**
   * At start, before anything can submit: every file in outgoing/ whose message is not pending
   * (finished while the node ran before this cleanup existed, or a crash between writing the
   * file and storing the message) goes. `pending(id)` is the delivery store's word.
   */
  async sweep(pending: (id: MessageId) => boolean): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (!OUTGOING_NAME.test(name) || pending(name as MessageId)) continue;
      await this.finished(name as MessageId);
      removed++;
    }
    if (removed > 0) this.log.info({ removed }, 'finished messages removed from outgoing/');
    return removed;
  }
}

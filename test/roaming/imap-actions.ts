// What a user does in a mail client, at random but seeded (a failing run can be replayed), and how a
// device's whole mailbox looks to an IMAP client: shared by the roaming tests that compare devices.
import type { ImapFlow } from 'imapflow';
import { STANDARD_FOLDERS } from '../../agent/sync/model.ts';

/** Mailboxes every device has from the start (made before the random run). */
export const BASE_FOLDERS = ['Work', 'Lists', 'Archive', 'Trash'];
export const FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '$Label1'];

/** A seeded generator (an LCG: the same seed gives the same run). */
export function rng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

/** Every mailbox of a device as an IMAP client sees it: one line per mailbox, sorted "subject flags". */
export async function state(client: ImapFlow): Promise<string> {
  const out: string[] = [];
  const boxes = (await client.list()).map((b) => b.path).sort();
  for (const path of boxes) {
    const lock = await client.getMailboxLock(path);
    try {
      const lines: string[] = [];
      if (client.mailbox && client.mailbox.exists > 0) {
        for await (const m of client.fetch('1:*', { envelope: true, flags: true })) {
          const flags = [...(m.flags ?? [])].filter((f) => f !== '\\Recent').sort();
          lines.push(`${m.envelope?.subject} ${flags.join(',')}`);
        }
      }
      out.push(`${path}: ${lines.sort().join(' | ')}`);
    } finally {
      lock.release();
    }
  }
  return out.join('\n');
}

/**
 * state(), or undefined while the mailbox is still changing under the look: sync may delete a
 * folder the look has just listed before it selects it, and the server answers that SELECT with NO.
 * Any other failure is thrown, with the server's own text.
 */
export async function settledState(client: ImapFlow): Promise<string | undefined> {
  try {
    return await state(client);
  } catch (err) {
    const { responseStatus, responseText } = err as { responseStatus?: string; responseText?: string };
    if (responseStatus === 'NO') return undefined;
    if (responseText) (err as Error).message += `: ${responseText}`;
    throw err;
  }
}

async function subjectsIn(client: ImapFlow, path: string): Promise<string[]> {
  const lock = await client.getMailboxLock(path);
  try {
    const out: string[] = [];
    if (client.mailbox && client.mailbox.exists > 0) {
      for await (const m of client.fetch('1:*', { envelope: true })) out.push(m.envelope?.subject ?? '');
    }
    return out;
  } finally {
    lock.release();
  }
}

/**
 * One random user action over IMAP: a flag set or cleared, a move, an expunge, and with `folders`
 * also a folder made, renamed or deleted (a deleted folder's messages go with it). Returns the
 * subjects it expunged, for the check that nothing else is lost.
 */
export async function act(
  client: ImapFlow,
  random: () => number,
  options: { folders?: boolean } = {},
): Promise<string[]> {
  try {
    return await actOnce(client, random, options);
  } catch (err) {
    const e = err as Error & { executedCommand?: string; response?: string };
    if (e.executedCommand) throw new Error(`${e.executedCommand.slice(0, 200)} → ${e.response}`);
    throw err;
  }
}

async function actOnce(
  client: ImapFlow,
  random: () => number,
  options: { folders?: boolean },
): Promise<string[]> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];
  // The standard mailboxes are never renamed or deleted; Junk, Sent and Drafts are left alone (a
  // move to Junk is a complaint about the sender, agent/spam).
  const fixed = new Set(['INBOX', ...BASE_FOLDERS, ...STANDARD_FOLDERS]);
  const all = (await client.list()).map((b) => b.path);
  const extra = all.filter((p) => !fixed.has(p));
  if (options.folders && random() < 0.12) {
    const r = random();
    const name = `F${Math.floor(random() * 1e6)}`;
    if (r < 0.45 || extra.length === 0) await client.mailboxCreate(name);
    else if (r < 0.7) await client.mailboxRename(pick(extra), name);
    else {
      const gone = pick(extra);
      const subjects = await subjectsIn(client, gone);
      await client.mailboxDelete(gone);
      return subjects;
    }
    return [];
  }
  const from = pick(['INBOX', ...BASE_FOLDERS, ...extra]);
  const lock = await client.getMailboxLock(from);
  try {
    if (!client.mailbox || client.mailbox.exists === 0) return [];
    const uids = (await client.search({ all: true }, { uid: true })) || [];
    if (uids.length === 0) return [];
    const uid = String(pick(uids));
    const what = random();
    if (what < 0.3) await client.messageFlagsAdd(uid, [pick(FLAGS)], { uid: true });
    else if (what < 0.55) await client.messageFlagsRemove(uid, [pick(FLAGS)], { uid: true });
    else if (what < 0.85) {
      const to = pick(['INBOX', ...BASE_FOLDERS, ...extra].filter((f) => f !== from));
      await client.messageMove(uid, to, { uid: true });
    } else {
      const m = await client.fetchOne(uid, { envelope: true }, { uid: true });
      await client.messageDelete(uid, { uid: true });
      return m && m.envelope?.subject ? [m.envelope.subject] : [];
    }
  } finally {
    lock.release();
  }
  return [];
}

import { ImapFlow } from 'imapflow';
import type { KithNode } from '../../agent/node.ts';
import { HANG_MS } from '../helpers/hang.ts';

/** A real IMAP client (imapflow, STARTTLS, AUTH) logged in to a node's gateway, as a mail client is. */
export async function imapOf(node: KithNode): Promise<ImapFlow> {
  const s = node.mailSettings;
  const client = new ImapFlow({
    host: s.imap.host,
    port: s.imap.port,
    secure: false,
    doSTARTTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: s.user, pass: s.pass },
    logger: false,
  });
  await client.connect();
  return client;
}

/** The UID of the message with this subject in a mailbox (undefined when it is not there). */
export async function uidOf(client: ImapFlow, mailbox: string, subject: string): Promise<number | undefined> {
  const lock = await client.getMailboxLock(mailbox);
  try {
    const uids = (await client.search({ header: { subject } }, { uid: true })) || [];
    return uids[0];
  } finally {
    lock.release();
  }
}

/** Waits (polling the server, as a client does) until a message with this subject is in the mailbox (the bound is a hang detector). */
export async function waitForSubject(
  client: ImapFlow,
  mailbox: string,
  subject: string,
  timeoutMs = HANG_MS,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const uid = await uidOf(client, mailbox, subject);
    if (uid !== undefined) return uid;
    if (Date.now() > deadline)
      throw new Error(`no message "${subject}" in ${mailbox} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** UID MOVE of one message, found by subject, from one mailbox to another. */
export async function move(client: ImapFlow, subject: string, from: string, to: string): Promise<void> {
  const uid = await uidOf(client, from, subject);
  if (uid === undefined) throw new Error(`"${subject}" is not in ${from}`);
  const lock = await client.getMailboxLock(from);
  try {
    const moved = await client.messageMove(String(uid), to, { uid: true });
    if (!moved) throw new Error(`MOVE of "${subject}" to ${to} failed`);
  } finally {
    lock.release();
  }
}

/** What clients without MOVE do: UID COPY, then \Deleted and UID EXPUNGE in the source. */
export async function copyAndExpunge(
  client: ImapFlow,
  subject: string,
  from: string,
  to: string,
): Promise<void> {
  const uid = await uidOf(client, from, subject);
  if (uid === undefined) throw new Error(`"${subject}" is not in ${from}`);
  const lock = await client.getMailboxLock(from);
  try {
    const copied = await client.messageCopy(String(uid), to, { uid: true });
    if (!copied) throw new Error(`COPY of "${subject}" to ${to} failed`);
    if (!(await client.messageDelete(String(uid), { uid: true }))) throw new Error('expunge failed');
  } finally {
    lock.release();
  }
}

/** What reading a message in a client does: UID STORE +FLAGS (\Seen), the message found by subject. */
export async function markSeen(client: ImapFlow, mailbox: string, subject: string): Promise<void> {
  const uid = await uidOf(client, mailbox, subject);
  if (uid === undefined) throw new Error(`"${subject}" is not in ${mailbox}`);
  const lock = await client.getMailboxLock(mailbox);
  try {
    if (!(await client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true })))
      throw new Error(`STORE \\Seen on "${subject}" failed`);
  } finally {
    lock.release();
  }
}

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import type { KithNode } from '../../agent/node.ts';

/**
 * A mail client (python3 smtplib, STARTTLS + AUTH) posts to an address through the node's SMTP.
 * Asynchronous: the node answering it runs in this very process.
 */
export async function smtpPost(from: KithNode, to: string, subject: string, body: string): Promise<string> {
  const s = from.mailSettings;
  const result = await promisify(execFile)(
    'python3',
    [
      join(import.meta.dirname, 'smtp_post.py'),
      s.smtp.host,
      String(s.smtp.port),
      s.user,
      s.pass,
      s.email,
      to,
      subject,
      body,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  ).catch((err: Error & { stderr?: string }) => {
    throw new Error(`smtplib failed: ${err.stderr ?? err.message}`);
  });
  return result.stdout.trim();
}

/** Every message of INBOX over real IMAP (imapflow, STARTTLS), as source text. */
export async function imapInbox(node: KithNode): Promise<string[]> {
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
  try {
    const box = await client.mailboxOpen('INBOX');
    if (box.exists === 0) return [];
    const out: string[] = [];
    for await (const m of client.fetch('1:*', { source: true })) out.push(m.source!.toString());
    return out;
  } finally {
    await client.logout();
  }
}

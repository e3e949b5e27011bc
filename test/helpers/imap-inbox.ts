import { ImapFlow, type ImapFlowOptions } from 'imapflow';

/** Every message of INBOX, as source text, read over real IMAP (imapflow) with these settings. */
export async function inboxSources(options: ImapFlowOptions): Promise<string[]> {
  const client = new ImapFlow({ logger: false, ...options });
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

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

/** How a mail client logs in to a node's gateway (`kith mail-settings`, node.mailSettings). */
export interface GatewayLogin {
  user: string;
  pass: string;
  imap: { host: string; port: number };
}

/** imapflow options for a node's gateway: loopback IMAP with STARTTLS (its certificate is self-signed). */
export function gatewayImapOptions(s: GatewayLogin): ImapFlowOptions {
  return {
    host: s.imap.host,
    port: s.imap.port,
    secure: false,
    doSTARTTLS: true,
    auth: { user: s.user, pass: s.pass },
    tls: { rejectUnauthorized: false },
    logger: false,
  };
}

/** A real IMAP client (imapflow) logged in to a node's gateway, as a mail client is. */
export async function openGatewayImap(s: GatewayLogin): Promise<ImapFlow> {
  const client = new ImapFlow(gatewayImapOptions(s));
  await client.connect();
  return client;
}

import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import type { KithNode } from '../../agent/node.ts';
import { startNetwork } from '../../cli/demo/network.ts';
import { silentLogger } from '../../common/logger.ts';
import { HANG_MS } from '../helpers/hang.ts';

/**
 * Real KithNodes on loopback in this process (as cli/demo/network.ts starts them), with trust set
 * up only by real invitations: no contact keys are exchanged behind the agents' backs.
 */
export interface Net {
  nodes: Map<string, KithNode>;
  stop(): Promise<void>;
}

export async function startNet(
  dir: string,
  names: string[],
  invitations: [inviter: string, invitee: string][],
  discoveryTimeoutMs: number,
): Promise<Net> {
  const network = await startNetwork({
    dir,
    topology: { names, links: invitations },
    log: silentLogger(),
    overrides: { discovery: { timeoutMs: discoveryTimeoutMs } },
  });
  return { nodes: new Map(network.agents.map((a) => [a.name, a.node])), stop: () => network.stop() };
}

/** A nodemailer SMTP transport to a node's submission server (STARTTLS, AUTH). */
export function smtpOf(node: KithNode) {
  const s = node.mailSettings;
  return nodemailer.createTransport({
    host: s.smtp.host,
    port: s.smtp.port,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: s.user, pass: s.pass },
  });
}

/** Waits for a message with this subject in a node's INBOX (over IMAP) and returns its source. */
export async function waitForMail(node: KithNode, subject: string, timeoutMs = HANG_MS): Promise<string> {
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
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lock = await client.getMailboxLock('INBOX');
      try {
        const uids = (await client.search({ header: { subject } }, { uid: true })) || [];
        if (uids.length > 0) {
          const msg = await client.fetchOne(String(uids[0]), { source: true }, { uid: true });
          if (msg && msg.source) return msg.source.toString('utf8');
        }
      } finally {
        lock.release();
      }
      if (Date.now() > deadline) throw new Error(`no message "${subject}" within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
}

/** The unfolded value of the first header field of that name. */
export function headerOf(source: string, name: string): string | undefined {
  const head = source.split(/\r?\n\r?\n/)[0].replace(/\r?\n[ \t]+/g, ' ');
  const line = head.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

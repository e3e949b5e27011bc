import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { inboxSources } from '../helpers/imap-inbox.ts';
import type { KithNode } from '../../agent/node.ts';
import { until } from '../agents/network.ts';
import { HANG_MS } from '../helpers/hang.ts';

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
    { encoding: 'utf8', timeout: HANG_MS },
  ).catch((err: Error & { stderr?: string }) => {
    throw new Error(`smtplib failed: ${err.stderr ?? err.message}`);
  });
  return result.stdout.trim();
}

/** Every message of INBOX over real IMAP (imapflow, STARTTLS), as source text. */
export function imapInbox(node: KithNode): Promise<string[]> {
  const s = node.mailSettings;
  return inboxSources({
    host: s.imap.host,
    port: s.imap.port,
    secure: false,
    doSTARTTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: s.user, pass: s.pass },
  });
}

/**
 * Each node and the host trust each other, keys and agent certificates exchanged beforehand (as
 * `kith agent import` brings them), and the host dials each: a star of links, none between the
 * others. Neither invitations nor trust by fingerprint alone would do for 20: each first contact
 * is a provisional peer, and an agent takes at most 10 a minute from one IP address.
 */
export async function starAround(host: KithNode, nodes: KithNode[]): Promise<void> {
  for (const m of nodes) {
    for (const [a, b] of [
      [host, m],
      [m, host],
    ]) {
      await a.trust.addEntity(b.identity.entityPublicArmored, {
        trusted: true,
        contact: true,
        source: 'fingerprint',
      });
      await a.trust.addAgentCertificate(b.identity.certificate);
    }
    await host.links.trust(m.identity.fingerprint, {
      addresses: m.links.multiaddrs().map((x) => x.toString()),
    });
  }
  await until(
    () => (nodes.every((m) => host.links.isLinked(m.identity.agentId)) ? true : undefined),
    'the host linked with every node',
  );
}

/** Waits until the node's INBOX (over IMAP) holds messages matching `pattern`; returns them. */
export async function inboxMatching(node: KithNode, pattern: RegExp, timeoutMs = HANG_MS): Promise<string[]> {
  return until(
    async () => {
      const found = (await imapInbox(node)).filter((r) => pattern.test(r));
      return found.length > 0 ? found : undefined;
    },
    `a message matching ${pattern} at ${node.identity.email}`,
    timeoutMs,
    250,
  );
}

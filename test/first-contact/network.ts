import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { KithNode } from '../../agent/node.ts';
import { createIdentity } from '../../agent/identity/identity.ts';
import { openRedis, type RedisHandle } from '../../agent/queue/connection.ts';
import { silentLogger } from '../../common/logger.ts';
import { loadConfig } from '../../config/load.ts';
import { openDatabase } from '../../store/db.ts';
import { prepareDataDir } from '../../store/datadir.ts';

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
  const log = silentLogger();
  prepareDataDir(dir);
  const redis: RedisHandle = await openRedis({ dir: join(dir, 'redis'), binary: 'redis-server', log });
  const nodes = new Map<string, KithNode>();
  const stop = async () => {
    await Promise.all([...nodes.values()].map((n) => n.stop()));
    await redis.stop();
  };
  try {
    for (const name of names) {
      const dataDir = join(dir, name);
      const passphrase = randomBytes(18).toString('base64url');
      const db = openDatabase(prepareDataDir(dataDir).database);
      try {
        const display = name[0].toUpperCase() + name.slice(1);
        await createIdentity(db, { name: display, email: `${name}@demo.kith`, passphrase });
      } finally {
        db.close();
      }
      const config = loadConfig({
        env: {},
        overrides: {
          dataDir,
          redis: { prefix: `kith-fc-${name}` },
          p2p: { listen: ['/ip4/127.0.0.1/tcp/0'] },
          smtp: { port: 0 },
          imap: { port: 0 },
          http: { port: 0 },
          discovery: { timeoutMs: discoveryTimeoutMs },
        },
      });
      const node = new KithNode({ config, passphrase, log, redis });
      nodes.set(name, node);
      await node.start();
    }
    for (const [inviter, invitee] of invitations) {
      const code = nodes.get(inviter)!.links.createInvitation({ ttlMs: 60_000 });
      await nodes.get(invitee)!.links.acceptInvitation(code);
    }
    return { nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
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
export async function waitForMail(node: KithNode, subject: string, timeoutMs = 20_000): Promise<string> {
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

// Two Dovecot mail stores on loopback (Debian's dovecot-imapd, unprivileged under a temp dir, started
// by bench/lib/mail-servers.ts): A serves IMAP (the changes are made there, as on Kith's home
// device), and `doveadm sync` replicates A to the Maildir B (dsync), the baseline the roaming bench
// compares against.
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { BASELINE_PASS, mailOwner, startDovecot as startServer } from '../lib/mail-servers.ts';

export const DOVECOT_PASS = BASELINE_PASS;

export interface Dovecot {
  port: number;
  user: string;
  /** Runs `doveadm sync` A → Maildir B; resolves with the milliseconds it took. */
  sync(): number;
  /** Message count of a mailbox in B (doveadm on B's location). */
  countB(mailbox: string): number;
  stop(): Promise<void>;
}

export async function startDovecot(dir: string, messages: Buffer[]): Promise<Dovecot> {
  const server = await startServer(dir, { messages });
  const replica = join(dir, 'B');
  mkdirSync(replica, { recursive: true });
  if (userInfo().uid === 0) {
    const { uid, gid } = mailOwner();
    chownSync(replica, uid, gid);
  }
  const user = 'bench';
  const { conf } = server;
  return {
    port: server.imapPort,
    user,
    sync() {
      const t0 = performance.now();
      execFileSync('doveadm', ['-c', conf, 'sync', '-u', user, `maildir:${replica}`], { stdio: 'inherit' });
      return performance.now() - t0;
    },
    countB(mailbox) {
      const out = execFileSync('doveadm', [
        '-c',
        conf,
        '-o',
        `mail_location=maildir:${replica}`,
        'mailbox',
        'status',
        '-u',
        user,
        'messages',
        mailbox,
      ]).toString();
      return Number(/messages=(\d+)/.exec(out)?.[1] ?? -1);
    },
    stop: () => server.stop(),
  };
}

// Two Dovecot instances on loopback (Debian's dovecot-imapd, unprivileged under a temp dir, started
// by bench/lib/mail-servers.ts), each with its own Maildir and IMAP port: A takes the changes (as
// Kith's home device does), and `doveadm sync` replicates A to B over TCP through B's doveadm
// server (dsync between two servers, as Dovecot's replication does): the baseline the roaming bench
// compares against.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BASELINE_PASS, freePort, startDovecot } from '../lib/mail-servers.ts';

export const DOVECOT_PASS = BASELINE_PASS;

export interface DovecotPair {
  /** IMAP ports of A and B. */
  portA: number;
  portB: number;
  user: string;
  /**
   * Runs `doveadm sync` A ⇄ B over B's doveadm port (B starts with no INBOX: one of its own would
   * have another mailbox GUID, which dsync reports as a conflict and leaves unsynced); returns the
   * milliseconds it took.
   */
  sync(): number;
  stop(): Promise<void>;
}

/** A holds `messages` in its INBOX; B starts empty. */
export async function startDovecots(dir: string, messages: Buffer[]): Promise<DovecotPair> {
  mkdirSync(join(dir, 'A'), { recursive: true });
  mkdirSync(join(dir, 'B'), { recursive: true });
  const a = await startDovecot(join(dir, 'A'), { messages });
  const doveadmPort = await freePort();
  const b = await startDovecot(join(dir, 'B'), { doveadmPort, noInbox: true }).catch(async (err: Error) => {
    await a.stop();
    throw err;
  });
  const user = 'bench';
  return {
    portA: a.imapPort,
    portB: b.imapPort,
    user,
    sync() {
      const t0 = performance.now();
      execFileSync(
        'doveadm',
        [
          '-c',
          a.conf,
          '-o',
          `doveadm_password=${BASELINE_PASS}`,
          'sync',
          '-u',
          user,
          `tcp:127.0.0.1:${doveadmPort}`,
        ],
        { stdio: 'inherit' },
      );
      return performance.now() - t0;
    },
    stop: async () => {
      await Promise.all([a.stop(), b.stop()]);
    },
  };
}

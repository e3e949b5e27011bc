// Two Dovecot mail stores on loopback (Debian's dovecot-imapd, unprivileged under a temp dir):
// A serves IMAP (the changes are made there, as on Kith's home device), and `doveadm sync`
// replicates A to the Maildir B (dsync), the baseline the roaming bench compares against.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';

export const DOVECOT_PASS = 'bench-password';

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
  const maildir = join(dir, 'A');
  const replica = join(dir, 'B');
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, d), { recursive: true });
  const now = Math.floor(Date.now() / 1000);
  messages.forEach((m, i) => writeFileSync(join(maildir, 'cur', `${now}.${i}.bench:2,`), m));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const me = userInfo();
  for (const d of ['run', 'state', 'home']) mkdirSync(join(dir, d), { recursive: true });
  for (const d of [dir, join(dir, '..'), join(dir, 'run')]) chmodSync(d, 0o755);
  const root = me.uid === 0;
  const mailUid = root ? Number(execFileSync('id', ['-u', 'dovenull']).toString()) : me.uid;
  const mailGid = root ? Number(execFileSync('id', ['-g', 'dovenull']).toString()) : me.gid;
  if (root) {
    mkdirSync(replica, { recursive: true });
    for (const p of [
      maildir,
      join(maildir, 'cur'),
      join(maildir, 'new'),
      join(maildir, 'tmp'),
      join(dir, 'home'),
      replica,
    ])
      chownSync(p, mailUid, mailGid);
    for (const f of readdirSync(join(maildir, 'cur'))) chownSync(join(maildir, 'cur', f), mailUid, mailGid);
  }
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    `base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = ${me.username}
default_internal_group = ${root ? 'root' : me.username}
default_login_user = ${root ? 'dovenull' : me.username}
first_valid_uid = 0
mail_location = maildir:${maildir}
passdb {
  driver = static
  args = password=${DOVECOT_PASS}
}
userdb {
  driver = static
  args = uid=${mailUid} gid=${mailGid} home=${dir}/home
}
service imap-login {
  chroot =
  inet_listener imap {
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service stats {
  chroot =
}
`,
  );
  const child: ChildProcess = spawn('dovecot', ['-F', '-c', conf], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let t = 0; t < 100; t++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const user = 'bench';
  return {
    port,
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
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

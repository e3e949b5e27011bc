// The baseline mail system: Debian's Postfix accepting SMTP on loopback and delivering over LMTP
// to Debian's Dovecot, which serves the mailbox over IMAP. Both run from a temp dir with their
// own configuration (nothing under /etc is touched), loopback only, no TLS (Kith's gateway runs
// without TLS in the same benchmark), and are stopped by stop().
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../lib/stats.ts';

export const MTA_USER = 'bench@bench.test';
export const MTA_PASS = 'bench-password';

export interface Mta {
  smtpPort: number;
  imapPort: number;
  /** PIDs of every Postfix and Dovecot process, for peak memory. */
  pids(): number[];
  stop(): Promise<void>;
}

export function mtaMissing(): string | undefined {
  for (const bin of ['/usr/sbin/postfix', '/usr/sbin/dovecot', '/usr/lib/dovecot/lmtp']) {
    if (!existsSync(bin)) return `${bin} not found: apt-get install -y postfix dovecot-imapd dovecot-lmtpd`;
  }
  return undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

async function listening(port: number, what: string): Promise<void> {
  const { connect } = await import('node:net');
  for (let t = 0; t < 100; t++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${what} did not listen on ${port}`);
}

async function startDovecot(
  dir: string,
  lmtpPort: number,
): Promise<{ imapPort: number; child: ChildProcess }> {
  const imapPort = await freePort();
  const maildir = join(dir, 'Maildir');
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, d), { recursive: true });
  for (const d of ['run', 'state', 'home']) mkdirSync(join(dir, d), { recursive: true });
  const me = userInfo();
  const root = me.uid === 0;
  // imap-login refuses to run as root; as root it runs as dovenull, which must reach base_dir,
  // and Dovecot never opens mail as root: the mail then belongs to dovenull.
  for (const d of [dir, join(dir, '..'), join(dir, 'run')]) chmodSync(d, 0o755);
  const uid = root ? Number(execFileSync('id', ['-u', 'dovenull']).toString()) : me.uid;
  const gid = root ? Number(execFileSync('id', ['-g', 'dovenull']).toString()) : me.gid;
  if (root) {
    for (const p of [maildir, ...['cur', 'new', 'tmp'].map((d) => join(maildir, d)), join(dir, 'home')])
      chownSync(p, uid, gid);
  }
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    `base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
protocols = imap lmtp
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
  args = password=${MTA_PASS}
}
userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${dir}/home allow_all_users=yes
}
service imap-login {
  chroot =
  inet_listener imap {
    port = ${imapPort}
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
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
  const child = spawn('dovecot', ['-F', '-c', conf], { stdio: ['ignore', 'inherit', 'inherit'] });
  await listening(imapPort, 'dovecot imap');
  await listening(lmtpPort, 'dovecot lmtp');
  return { imapPort, child };
}

/** master.cf from Debian's, with smtpd on our port only and no chroot (nothing is copied into one). */
function masterCf(smtpPort: number): string {
  const lines = readFileSync('/etc/postfix/master.cf', 'utf8').split('\n');
  const out: string[] = [];
  for (const line of lines) {
    if (/^\S/.test(line) && !line.startsWith('#')) {
      const cols = line.split(/\s+/);
      if (cols[1] === 'inet') {
        if (cols[0] !== 'smtp') continue;
        cols[0] = `127.0.0.1:${smtpPort}`;
      }
      if (cols.length >= 8) cols[4] = 'n';
      out.push(cols.join(' '));
    } else out.push(line);
  }
  return out.join('\n');
}

async function startPostfix(dir: string, lmtpPort: number): Promise<{ smtpPort: number; conf: string }> {
  const smtpPort = await freePort();
  const conf = join(dir, 'conf');
  mkdirSync(conf, { recursive: true });
  mkdirSync(join(dir, 'data'), { recursive: true });
  mkdirSync(join(dir, 'queue'), { recursive: true });
  const postfixUid = Number(execFileSync('id', ['-u', 'postfix']).toString());
  chownSync(join(dir, 'data'), postfixUid, 0);
  writeFileSync(
    join(conf, 'main.cf'),
    `compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mta.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
virtual_mailbox_domains = bench.test
virtual_transport = lmtp:inet:127.0.0.1:${lmtpPort}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtputf8_enable = no
smtpd_banner = $myhostname ESMTP
maillog_file = ${dir}/postfix.log
maillog_file_prefixes = ${dir}
shlib_directory = /usr/lib/postfix
`,
  );
  writeFileSync(join(conf, 'master.cf'), masterCf(smtpPort));
  execFileSync('postfix', ['-c', conf, 'start'], { stdio: ['ignore', 'inherit', 'inherit'] });
  await listening(smtpPort, 'postfix smtpd');
  return { smtpPort, conf };
}

/** Starts Dovecot (IMAP + LMTP) then Postfix, under `dir`. */
export async function startMta(dir: string): Promise<Mta> {
  const lmtpPort = await freePort();
  mkdirSync(join(dir, 'dovecot'), { recursive: true });
  mkdirSync(join(dir, 'postfix'), { recursive: true });
  // Dovecot's unprivileged processes must reach their directories through ours.
  chmodSync(join(dir, '..'), 0o755);
  const dovecot = await startDovecot(join(dir, 'dovecot'), lmtpPort);
  let postfix: { smtpPort: number; conf: string } | undefined;
  const stop = async (): Promise<void> => {
    if (postfix) {
      try {
        execFileSync('postfix', ['-c', postfix.conf, 'stop'], { stdio: 'ignore' });
      } catch {
        // already stopped
      }
      const pidFile = join(dir, 'postfix', 'queue', 'pid', 'master.pid');
      for (let t = 0; t < 50 && existsSync(pidFile); t++) await sleep(100);
    }
    if (dovecot.child.exitCode === null) {
      dovecot.child.kill('SIGTERM');
      await new Promise((r) => dovecot.child.once('exit', r));
    }
  };
  try {
    postfix = await startPostfix(join(dir, 'postfix'), lmtpPort);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    smtpPort: postfix.smtpPort,
    imapPort: dovecot.imapPort,
    pids: () => {
      // Every process whose command line names our directories (Postfix's children do not,
      // so add the descendants of its master process).
      const masterPid = Number(
        readFileSync(join(dir, 'postfix', 'queue', 'pid', 'master.pid'), 'utf8').trim(),
      );
      const tree = execFileSync('ps', ['-eo', 'pid=,ppid=']).toString().trim().split('\n');
      const roots = new Set([masterPid, dovecot.child.pid!]);
      const out = new Set<number>(roots);
      let grew = true;
      while (grew) {
        grew = false;
        for (const line of tree) {
          const [pid, ppid] = line.trim().split(/\s+/).map(Number);
          if (out.has(ppid!) && !out.has(pid!)) {
            out.add(pid!);
            grew = true;
          }
        }
      }
      return [...out];
    },
    stop,
  };
}

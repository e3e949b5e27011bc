// Debian's Dovecot and Postfix run from a temp dir with their own configuration (nothing under /etc
// or /var/spool is touched), loopback only, no TLS: the start-up both the outside list server of the
// bridge tests (outside-mail.ts) and the benches' baselines (bench/lib/mail-servers.ts) use.
// Why here and not in bench/lib: the tests must run from a clean clone without bench/, and bench
// already builds on test/ (test/agents/network.ts, outside-mail.ts); a test importing bench would
// turn that around.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { HANG_MS } from './hang.ts';

/** Resolves once something accepts TCP connections on the port (retrying refused connects). */
export async function listening(port: number, what: string, timeoutMs = HANG_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function idOf(flag: '-u' | '-g', user: string): number {
  return Number(execFileSync('id', [flag, user]).toString());
}

export interface DovecotConf {
  imapPort: number;
  /** Also serve LMTP on this port (for Postfix). */
  lmtpPort?: number;
  /** The one password of every user (passdb static). */
  password: string;
  /** Where mail is (`maildir:…`, may name the user: %n). */
  mailLocation: string;
  /** The users' home (may name the user). */
  home: string;
  /** The user mail is opened as (never root: as root, dovenull). */
  uid: number;
  gid: number;
  /** Any recipient is a user (LMTP takes mail for every address). */
  allowAllUsers?: boolean;
  /** auth_username_format, e.g. %Ln (the local part, lower case). */
  usernameFormat?: string;
  /** More settings (a service), appended. */
  extra?: string;
}

/**
 * Writes `dir`/dovecot.conf (base, state and log under `dir`) and returns its path. The internal
 * and login users are this process's; as root, login runs as dovenull (imap-login refuses root),
 * which must reach base_dir.
 */
export function writeDovecotConf(dir: string, c: DovecotConf): string {
  const me = userInfo();
  const root = me.uid === 0;
  const lmtp = c.lmtpPort !== undefined;
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    `base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
protocols = imap${lmtp ? ' lmtp' : ''}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
${c.usernameFormat ? `auth_username_format = ${c.usernameFormat}\n` : ''}default_internal_user = ${me.username}
default_internal_group = ${root ? 'root' : me.username}
default_login_user = ${root ? 'dovenull' : me.username}
first_valid_uid = 0
mail_location = ${c.mailLocation}
passdb {
  driver = static
  args = password=${c.password}
}
userdb {
  driver = static
  args = uid=${c.uid} gid=${c.gid} home=${c.home}${c.allowAllUsers ? ' allow_all_users=yes' : ''}
}
service imap-login {
  chroot =
  inet_listener imap {
    port = ${c.imapPort}
  }
  inet_listener imaps {
    port = 0
  }
}
${
  lmtp
    ? `service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${c.lmtpPort}
  }
}
`
    : ''
}${c.extra ?? ''}service anvil {
  chroot =
}
service stats {
  chroot =
}
`,
  );
  return conf;
}

/** Dovecot in the foreground with that configuration (its stdout shown or not; stderr shown). */
export function spawnDovecot(conf: string, stdout: 'inherit' | 'ignore'): ChildProcess {
  return spawn('dovecot', ['-F', '-c', conf], { stdio: ['ignore', stdout, 'inherit'] });
}

export interface PostfixConf {
  smtpPort: number;
  /** Dovecot's LMTP port: every address of `domain` is delivered there. */
  lmtpPort: number;
  domain: string;
  hostname: string;
  /** myorigin: $myhostname or $mydomain. */
  origin: string;
  /** More main.cf settings, appended. */
  main?: string;
  /** More master.cf lines (a transport), appended. */
  master?: string[];
}

/**
 * Writes a Postfix configuration under `dir` (conf/, data/ and queue/ beside it; Postfix as root
 * with `postfix -c`) and returns the conf dir. Nothing is chrooted, smtpd listens on our port only.
 */
export function writePostfixConf(dir: string, c: PostfixConf): string {
  const conf = join(dir, 'conf');
  for (const d of [conf, join(dir, 'data'), join(dir, 'queue')]) mkdirSync(d, { recursive: true });
  chownSync(join(dir, 'data'), idOf('-u', 'postfix'), 0);
  // maillog_file_prefixes must include the temp dir: otherwise `postfix start` exits 1 with no
  // output (the reason is printed only on a terminal).
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
myhostname = ${c.hostname}
mydomain = ${c.domain}
myorigin = ${c.origin}
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
virtual_mailbox_domains = ${c.domain}
virtual_transport = lmtp:inet:127.0.0.1:${c.lmtpPort}
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
${c.main ?? ''}`,
  );
  writeFileSync(join(conf, 'master.cf'), masterCf(c.smtpPort, c.master ?? []));
  return conf;
}

/** master.cf from Debian's, with smtpd on our port only and no chroot (nothing is copied into one). */
function masterCf(smtpPort: number, extra: string[]): string {
  const out: string[] = [];
  for (const line of readFileSync('/etc/postfix/master.cf', 'utf8').split('\n')) {
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
  if (extra.length > 0) out.push(...extra, '');
  return out.join('\n');
}

/** The master process's pid file of the Postfix under `dir`. */
export function postfixPidFile(dir: string): string {
  return join(dir, 'queue', 'pid', 'master.pid');
}

/** Resolves once the Postfix under `dir` has gone (its master's pid file removed; 10 s at most). */
export async function postfixGone(dir: string): Promise<void> {
  const file = postfixPidFile(dir);
  for (let t = 0; t < 200 && existsSync(file); t++) await new Promise((r) => setTimeout(r, 50));
}

/** Stops the Postfix under `dir` if it runs (conf in dir/conf) and waits until it has gone. */
export async function stopPostfix(dir: string): Promise<void> {
  try {
    execFileSync('postfix', ['-c', join(dir, 'conf'), 'stop'], { stdio: 'ignore' });
  } catch {
    // not running
  }
  await postfixGone(dir);
}

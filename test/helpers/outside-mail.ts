// An Internet mailing list's mail server on loopback, for tests of the list bridge: Debian's
// Postfix takes SMTP and hands list mail to mlmmj (a real list manager) through a pipe transport
// and every other address of the domain to Dovecot over LMTP; Dovecot serves the mailboxes over
// IMAP. Everything runs from a temp dir with its own configuration (nothing under /etc or
// /var/spool is touched), on free loopback ports, without TLS, and stop() ends all of it.
// Start-up waits for the listening ports, never for a fixed time.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { inboxSources } from './imap-inbox.ts';
import { freePort } from './kith-nodes.ts';
import { HANG_MS } from './hang.ts';

/** The one password of every mailbox of the outside server. */
export const OUTSIDE_PASS = 'outside-password';
export const OUTSIDE_DOMAIN = 'outside.test';

export interface OutsideMail {
  smtpPort: number;
  imapPort: number;
  /** The list's address (`<name>@outside.test`), served by mlmmj. */
  list: string;
  /** Subscribes an address to the list at once (mlmmj-sub -f: no confirmation round). */
  subscribe(address: string): void;
  /** Subscribes many addresses at once, as mlmmj-sub stores them (subscribers.d/<first letter>). */
  subscribeMany(addresses: string[]): void;
  /** Where Dovecot keeps each user's Maildir (<mailDir>/<user>/new, cur). */
  mailDir: string;
  /** The Postfix master and Dovecot master processes (every other process descends from them). */
  roots(): number[];
  /** The subscribers mlmmj holds (mlmmj-list). */
  subscribers(): string[];
  /** Every message of a mailbox's INBOX over IMAP (imapflow), as source text. */
  inbox(user: string): Promise<string[]>;
  /** Stops Postfix only (the outside SMTP relay goes down; Dovecot stays); resolves once it is gone. */
  stopSmtp(): Promise<void>;
  /** Starts Postfix again with the same configuration; resolves once it listens. */
  startSmtp(): Promise<void>;
  /** Postfix's log, for a failing test's message. */
  log(): string;
  stop(): Promise<void>;
}

const BINARIES = [
  '/usr/sbin/postfix',
  '/usr/sbin/dovecot',
  '/usr/lib/dovecot/lmtp',
  '/usr/bin/mlmmj-receive',
];

/** Why the outside server cannot run here, or undefined. */
export function outsideMailMissing(): string | undefined {
  for (const bin of BINARIES) {
    if (!existsSync(bin))
      return `${bin} not found: apt-get install postfix dovecot-imapd dovecot-lmtpd mlmmj`;
  }
  return undefined;
}

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

function idOf(flag: '-u' | '-g', user: string): number {
  return Number(execFileSync('id', [flag, user]).toString());
}

/** Starts Dovecot, then Postfix, with an mlmmj list `listName@outside.test`, under `dir`. */
export async function startOutsideMail(dir: string, listName = 'dev'): Promise<OutsideMail> {
  const missing = outsideMailMissing();
  if (missing) throw new Error(missing);
  const root = userInfo().uid === 0;
  if (!root) throw new Error('the outside mail server needs root (Postfix and the pipe to mlmmj)');
  const [lmtpPort, imapPort, smtpPort] = [await freePort(), await freePort(), await freePort()];
  mkdirSync(dir, { recursive: true });
  for (const d of [dir, join(dir, '..')]) chmodSync(d, 0o755);
  const dovecot = startDovecot(join(dir, 'dovecot'), imapPort, lmtpPort);
  const list = `${listName}@${OUTSIDE_DOMAIN}`;
  const listDir = makeList(join(dir, 'mlmmj'), listName, smtpPort);
  let conf: string | undefined;
  const stop = async (): Promise<void> => {
    if (conf) {
      try {
        execFileSync('postfix', ['-c', conf, 'stop'], { stdio: 'ignore' });
      } catch {
        // not running
      }
      await gone(join(dir, 'postfix', 'queue', 'pid', 'master.pid'));
    }
    if (dovecot.exitCode === null) {
      dovecot.kill('SIGTERM');
      await new Promise((r) => dovecot.once('exit', r));
    }
  };
  try {
    await listening(imapPort, 'dovecot imap');
    await listening(lmtpPort, 'dovecot lmtp');
    conf = startPostfix(join(dir, 'postfix'), smtpPort, lmtpPort, join(dir, 'mlmmj'), listName);
    await listening(smtpPort, 'postfix smtpd');
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    smtpPort,
    imapPort,
    list,
    subscribe(address) {
      execFileSync('/usr/bin/mlmmj-sub', ['-L', listDir, '-a', address, '-f', '-q', '-s'], {
        stdio: 'ignore',
      });
      chownTree(listDir);
    },
    subscribeMany(addresses) {
      const byLetter = new Map<string, string[]>();
      for (const a of addresses) {
        const letter = a[0].toLowerCase();
        byLetter.set(letter, [...(byLetter.get(letter) ?? []), a]);
      }
      for (const [letter, list] of byLetter) {
        const file = join(listDir, 'subscribers.d', letter);
        const before = existsSync(file) ? readFileSync(file, 'utf8') : '';
        writeFileSync(file, before + list.map((a) => `${a}\n`).join(''));
      }
      chownTree(listDir);
    },
    mailDir: join(dir, 'dovecot', 'mail'),
    roots: () => [
      Number(readFileSync(join(dir, 'postfix', 'queue', 'pid', 'master.pid'), 'utf8').trim()),
      dovecot.pid!,
    ],
    subscribers() {
      return execFileSync('/usr/bin/mlmmj-list', ['-L', listDir], { encoding: 'utf8' })
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean);
    },
    inbox: (user) => inbox(imapPort, user),
    async stopSmtp() {
      execFileSync('postfix', ['-c', conf!, 'stop'], { stdio: 'ignore' });
      await gone(join(dir, 'postfix', 'queue', 'pid', 'master.pid'));
    },
    async startSmtp() {
      execFileSync('postfix', ['-c', conf!, 'start'], { stdio: ['ignore', 'ignore', 'inherit'] });
      await listening(smtpPort, 'postfix smtpd');
    },
    log: () => {
      const file = join(dir, 'postfix', 'postfix.log');
      return existsSync(file) ? readFileSync(file, 'utf8') : '';
    },
    stop,
  };
}

async function gone(file: string): Promise<void> {
  for (let t = 0; t < 200 && existsSync(file); t++) await new Promise((r) => setTimeout(r, 50));
}

function inbox(port: number, user: string): Promise<string[]> {
  return inboxSources({ host: '127.0.0.1', port, secure: false, auth: { user, pass: OUTSIDE_PASS } });
}

/** Dovecot: one Maildir per user (mail owned by dovenull, since Dovecot never writes mail as root). */
function startDovecot(dir: string, imapPort: number, lmtpPort: number): ChildProcess {
  for (const d of ['run', 'state', 'mail', 'home']) mkdirSync(join(dir, d), { recursive: true });
  for (const d of [dir, join(dir, 'run')]) chmodSync(d, 0o755);
  const uid = idOf('-u', 'dovenull');
  const gid = idOf('-g', 'dovenull');
  for (const d of ['mail', 'home']) chownSync(join(dir, d), uid, gid);
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
auth_username_format = %Ln
default_internal_user = root
default_internal_group = root
default_login_user = dovenull
first_valid_uid = 0
mail_location = maildir:${dir}/mail/%n
passdb {
  driver = static
  args = password=${OUTSIDE_PASS}
}
userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${dir}/home/%n allow_all_users=yes
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
  return spawn('dovecot', ['-F', '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** What mlmmj-make-ml makes, without its questions; owned by nobody, whom Postfix's pipe runs as. */
function makeList(spool: string, name: string, smtpPort: number): string {
  const listDir = join(spool, name);
  for (const d of [
    'incoming',
    'queue',
    'queue/discarded',
    'archive',
    'text',
    'subconf',
    'unsubconf',
    'bounce',
    'control',
    'moderation',
    'subscribers.d',
    'digesters.d',
    'requeue',
    'nomailsubs.d',
  ])
    mkdirSync(join(listDir, d), { recursive: true });
  writeFileSync(join(listDir, 'index'), '');
  cpSync('/usr/share/mlmmj/text.skel/en', join(listDir, 'text'), { recursive: true });
  const control = (file: string, value: string) =>
    writeFileSync(join(listDir, 'control', file), `${value}\n`);
  control('listaddress', `${name}@${OUTSIDE_DOMAIN}`);
  control('owner', `postmaster@${OUTSIDE_DOMAIN}`);
  control('relayhost', '127.0.0.1');
  control('smtpport', String(smtpPort));
  control('prefix', `[${name}]`);
  chmodSync(spool, 0o755);
  chownTree(listDir);
  return listDir;
}

function chownTree(dir: string): void {
  execFileSync('chown', ['-R', 'nobody:nogroup', dir]);
}

/** master.cf from Debian's: smtpd on our port only, no chroot, and the pipe to mlmmj. */
function masterCf(smtpPort: number, spool: string): string {
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
  out.push(
    'mlmmj unix - n n - - pipe',
    `  flags=ORhu user=nobody argv=/usr/bin/mlmmj-receive -F -L ${spool}/$nexthop`,
    '',
  );
  return out.join('\n');
}

function startPostfix(
  dir: string,
  smtpPort: number,
  lmtpPort: number,
  spool: string,
  listName: string,
): string {
  const conf = join(dir, 'conf');
  for (const d of [conf, join(dir, 'data'), join(dir, 'queue')]) mkdirSync(d, { recursive: true });
  chownSync(join(dir, 'data'), idOf('-u', 'postfix'), 0);
  // The list's address and its +extensions (dev+subscribe@, dev+bounces-…@) go to mlmmj.
  writeFileSync(join(conf, 'transport'), `${listName}@${OUTSIDE_DOMAIN} mlmmj:${listName}\n`);
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
myhostname = mx.${OUTSIDE_DOMAIN}
mydomain = ${OUTSIDE_DOMAIN}
myorigin = $mydomain
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
virtual_mailbox_domains = ${OUTSIDE_DOMAIN}
virtual_transport = lmtp:inet:127.0.0.1:${lmtpPort}
transport_maps = texthash:${conf}/transport
recipient_delimiter = +
mlmmj_destination_recipient_limit = 1
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtputf8_enable = no
message_size_limit = 20480000
smtpd_banner = $myhostname ESMTP
maillog_file = ${dir}/postfix.log
maillog_file_prefixes = ${dir}
shlib_directory = /usr/lib/postfix
`,
  );
  writeFileSync(join(conf, 'master.cf'), masterCf(smtpPort, spool));
  execFileSync('postfix', ['-c', conf, 'start'], { stdio: ['ignore', 'ignore', 'inherit'] });
  return conf;
}

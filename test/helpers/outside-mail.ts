// An Internet mailing list's mail server on loopback, for tests of the list bridge: Debian's
// Postfix takes SMTP and hands list mail to mlmmj (a real list manager) through a pipe transport
// and every other address of the domain to Dovecot over LMTP; Dovecot serves the mailboxes over
// IMAP. Everything runs from a temp dir with its own configuration (nothing under /etc or
// /var/spool is touched), on free loopback ports, without TLS, and stop() ends all of it.
// Start-up waits for the listening ports, never for a fixed time.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { inboxSources } from './imap-inbox.ts';
import { freePort } from './kith-nodes.ts';
import {
  idOf,
  listening,
  postfixGone,
  postfixPidFile,
  spawnDovecot,
  stopPostfix,
  writeDovecotConf,
  writePostfixConf,
} from './mail-servers.ts';

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
    if (conf) await stopPostfix(join(dir, 'postfix'));
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
    roots: () => [Number(readFileSync(postfixPidFile(join(dir, 'postfix')), 'utf8').trim()), dovecot.pid!],
    subscribers() {
      return execFileSync('/usr/bin/mlmmj-list', ['-L', listDir], { encoding: 'utf8' })
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean);
    },
    inbox: (user) => inbox(imapPort, user),
    async stopSmtp() {
      execFileSync('postfix', ['-c', conf!, 'stop'], { stdio: 'ignore' });
      await postfixGone(join(dir, 'postfix'));
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
  const conf = writeDovecotConf(dir, {
    imapPort,
    lmtpPort,
    password: OUTSIDE_PASS,
    mailLocation: `maildir:${dir}/mail/%n`,
    home: `${dir}/home/%n`,
    uid,
    gid,
    allowAllUsers: true,
    usernameFormat: '%Ln',
  });
  return spawnDovecot(conf, 'ignore');
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

/** Postfix: list mail through a pipe to mlmmj, every other address of the domain to Dovecot. */
function startPostfix(
  dir: string,
  smtpPort: number,
  lmtpPort: number,
  spool: string,
  listName: string,
): string {
  const conf = writePostfixConf(dir, {
    smtpPort,
    lmtpPort,
    domain: OUTSIDE_DOMAIN,
    hostname: `mx.${OUTSIDE_DOMAIN}`,
    origin: '$mydomain',
    main: `transport_maps = texthash:${dir}/conf/transport
recipient_delimiter = +
mlmmj_destination_recipient_limit = 1
message_size_limit = 20480000
`,
    master: [
      'mlmmj unix - n n - - pipe',
      `  flags=ORhu user=nobody argv=/usr/bin/mlmmj-receive -F -L ${spool}/$nexthop`,
    ],
  });
  // The list's address and its +extensions (dev+subscribe@, dev+bounces-…@) go to mlmmj.
  writeFileSync(join(conf, 'transport'), `${listName}@${OUTSIDE_DOMAIN} mlmmj:${listName}\n`);
  execFileSync('postfix', ['-c', conf, 'start'], { stdio: ['ignore', 'ignore', 'inherit'] });
  return conf;
}

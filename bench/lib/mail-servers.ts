// The baseline mail servers every benchmark compares with, started from a temp dir with their own
// configuration (nothing under /etc is touched), loopback only, no TLS, each stopped by stop():
// Debian's Dovecot (IMAP, optionally LMTP) and Debian's Postfix delivering over LMTP to it.
// Used by bench/e2e (Postfix → LMTP → Dovecot), bench/imap and bench/roaming (Dovecot alone).
// Their configuration is written by test/helpers/mail-servers.ts, shared with the bridge tests'
// outside list server.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import {
  listening as listeningWithin,
  postfixPidFile,
  spawnDovecot,
  stopPostfix,
  writeDovecotConf,
  writePostfixConf,
} from '../../test/helpers/mail-servers.ts';

export const BASELINE_PASS = 'bench-password';
export const MTA_USER = 'bench@bench.test';

const DOVECOT_BINS = ['/usr/sbin/dovecot'];
const MTA_BINS = ['/usr/sbin/postfix', '/usr/sbin/dovecot', '/usr/lib/dovecot/lmtp'];

function missing(bins: string[], packages: string): string | undefined {
  for (const bin of bins) {
    if (!existsSync(bin)) return `${bin} not found: apt-get install -y ${packages} (or bin/setup --bench)`;
  }
  return undefined;
}

/** Why Dovecot cannot run here, or undefined. */
export function dovecotMissing(): string | undefined {
  return missing(DOVECOT_BINS, 'dovecot-imapd');
}

/** Why Postfix → LMTP → Dovecot cannot run here, or undefined. */
export function mtaMissing(): string | undefined {
  return missing(MTA_BINS, 'postfix dovecot-imapd dovecot-lmtpd');
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** Waits until something accepts TCP connections on 127.0.0.1:port (10 s at most). */
export async function listening(port: number, what: string): Promise<void> {
  await listeningWithin(port, what, 10_000);
}

/** The user Dovecot opens mail as: never root (as root, dovenull). */
export function mailOwner(): { uid: number; gid: number } {
  const me = userInfo();
  if (me.uid !== 0) return { uid: me.uid, gid: me.gid };
  return {
    uid: Number(execFileSync('id', ['-u', 'dovenull']).toString()),
    gid: Number(execFileSync('id', ['-g', 'dovenull']).toString()),
  };
}

export interface DovecotOptions {
  /** Messages written straight into the INBOX's Maildir (indexed by Dovecot on first SELECT). */
  messages?: Iterable<Buffer>;
  /** Also serve LMTP on this port (for Postfix), accepting any recipient. */
  lmtpPort?: number;
  /** Also serve doveadm on this port (password BASELINE_PASS): the far end of a `doveadm sync tcp:`. */
  doveadmPort?: number;
  /**
   * No INBOX yet (an empty Maildir root): the far end of a first dsync, which then makes the INBOX
   * with the source's mailbox GUID instead of finding a conflicting one of its own.
   */
  noInbox?: boolean;
}

export interface Dovecot {
  imapPort: number;
  /** The dovecot.conf it runs with (for doveadm -c). */
  conf: string;
  maildir: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Dovecot under `dir` (Maildir at dir/Maildir), any user, password BASELINE_PASS. */
export async function startDovecot(dir: string, options: DovecotOptions = {}): Promise<Dovecot> {
  const imapPort = await freePort();
  const maildir = join(dir, 'Maildir');
  const subdirs = options.noInbox ? [] : ['cur', 'new', 'tmp'];
  mkdirSync(maildir, { recursive: true });
  for (const d of subdirs) mkdirSync(join(maildir, d), { recursive: true });
  for (const d of ['run', 'state', 'home']) mkdirSync(join(dir, d), { recursive: true });
  const now = Math.floor(Date.now() / 1000);
  const seeded: string[] = [];
  let i = 0;
  for (const m of options.messages ?? []) {
    const file = join(maildir, 'cur', `${now}.${i++}.bench:2,`);
    writeFileSync(file, m);
    seeded.push(file);
  }
  const root = userInfo().uid === 0;
  // imap-login refuses to run as root; as root it runs as dovenull, which must reach base_dir,
  // and Dovecot never opens mail as root: the mail then belongs to dovenull.
  for (const d of [dir, join(dir, '..'), join(dir, 'run')]) chmodSync(d, 0o755);
  const { uid, gid } = mailOwner();
  if (root) {
    const dirs = [maildir, ...subdirs.map((d) => join(maildir, d)), join(dir, 'home')];
    for (const p of [...dirs, ...seeded]) chownSync(p, uid, gid);
  }
  const lmtp = options.lmtpPort !== undefined;
  const doveadm =
    options.doveadmPort === undefined
      ? ''
      : `doveadm_password = ${BASELINE_PASS}
service doveadm {
  inet_listener {
    address = 127.0.0.1
    port = ${options.doveadmPort}
  }
}
`;
  const conf = writeDovecotConf(dir, {
    imapPort,
    lmtpPort: options.lmtpPort,
    password: BASELINE_PASS,
    mailLocation: `maildir:${maildir}`,
    home: `${dir}/home`,
    uid,
    gid,
    allowAllUsers: lmtp,
    extra: doveadm,
  });
  const child = spawnDovecot(conf, 'inherit');
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };
  try {
    await listening(imapPort, 'dovecot imap');
    if (lmtp) await listening(options.lmtpPort!, 'dovecot lmtp');
    if (options.doveadmPort !== undefined) await listening(options.doveadmPort, 'dovecot doveadm');
  } catch (err) {
    await stop();
    throw err;
  }
  return { imapPort, conf, maildir, child, stop };
}

async function startPostfix(dir: string, lmtpPort: number): Promise<{ smtpPort: number; conf: string }> {
  const smtpPort = await freePort();
  const conf = writePostfixConf(dir, {
    smtpPort,
    lmtpPort,
    domain: 'bench.test',
    hostname: 'mta.bench.test',
    origin: '$myhostname',
  });
  execFileSync('postfix', ['-c', conf, 'start'], { stdio: ['ignore', 'inherit', 'inherit'] });
  await listening(smtpPort, 'postfix smtpd');
  return { smtpPort, conf };
}

export interface Mta {
  smtpPort: number;
  imapPort: number;
  /** PIDs of every Postfix and Dovecot process, for peak memory and CPU time. */
  pids(): number[];
  stop(): Promise<void>;
}

/** Every descendant of `roots` (and the roots), from one `ps` listing. */
export function processTree(roots: number[]): number[] {
  const tree = execFileSync('ps', ['-eo', 'pid=,ppid=']).toString().trim().split('\n');
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
}

/** Starts Dovecot (IMAP + LMTP) then Postfix delivering to it, under `dir`. */
export async function startMta(dir: string): Promise<Mta> {
  const lmtpPort = await freePort();
  mkdirSync(join(dir, 'dovecot'), { recursive: true });
  mkdirSync(join(dir, 'postfix'), { recursive: true });
  // Dovecot's unprivileged processes must reach their directories through ours.
  chmodSync(join(dir, '..'), 0o755);
  const dovecot = await startDovecot(join(dir, 'dovecot'), { lmtpPort });
  const masterPidFile = postfixPidFile(join(dir, 'postfix'));
  let postfix: { smtpPort: number; conf: string } | undefined;
  const stop = async (): Promise<void> => {
    if (postfix) await stopPostfix(join(dir, 'postfix'));
    await dovecot.stop();
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
    // Postfix's children do not name our directories: the descendants of its master process.
    pids: () => processTree([Number(readFileSync(masterPidFile, 'utf8').trim()), dovecot.child.pid!]),
    stop,
  };
}

// Network namespaces for tests that cut links (test/faults/link-cut) and model NATs (test/netns):
// a test creates only its own namespaces, with a name prefix it is given, and only veth pairs
// between them; deleting a namespace deletes its veths and iptables rules with it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ProcessNode, type MailSettings, type NodeOptions } from './kith-nodes.ts';

/** Runs a command to completion; throws with its stderr when it fails. */
export function sh(args: string[]): string {
  return execFileSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Why namespace tests cannot run here, or undefined when they can. The probe namespace is named
 * with `probePrefix`, so a test that may create only names with its own prefix stays within it.
 */
export function netnsUnavailable(probePrefix = 'kithprobe'): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  const probe = `${probePrefix}probe${process.pid}${randomBytes(2).toString('hex')}`;
  try {
    sh(['ip', 'netns', 'add', probe]);
  } catch (err) {
    return `cannot create a network namespace (ip netns add: ${(err as Error).message.split('\n')[0]}); run as root with CAP_SYS_ADMIN`;
  } finally {
    try {
      sh(['ip', 'netns', 'del', probe]);
    } catch {
      // it was never created
    }
  }
  try {
    sh(['iptables', '--version']);
  } catch {
    return 'iptables is not installed (apt-get install -y iptables)';
  }
  return undefined;
}

/**
 * Two namespaces joined by one veth pair (`v0` in each), with private addresses: libp2p announces
 * a listening public address only once it is confirmed (NOTES.md), a private one at once. They
 * exist only inside these namespaces, which have no route out, so no packet leaves the pair.
 */
export class NetnsPair {
  readonly a: string;
  readonly b: string;
  readonly ipA = '10.213.77.1';
  readonly ipB = '10.213.77.2';
  private readonly created: string[] = [];
  private isCut = false;

  constructor(prefix: string) {
    const tag = `${prefix}${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
    this.a = `${tag}a`;
    this.b = `${tag}b`;
    try {
      for (const ns of [this.a, this.b]) {
        sh(['ip', 'netns', 'add', ns]);
        this.created.push(ns);
        sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      }
      sh(['ip', '-n', this.a, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v0', 'netns', this.b]);
      for (const [ns, ip] of [
        [this.a, this.ipA],
        [this.b, this.ipB],
      ]) {
        sh(['ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'v0']);
        sh(['ip', '-n', ns, 'link', 'set', 'v0', 'up']);
      }
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  /** The command prefix that runs a process in namespace `ns`. */
  wrapper(ns: string): string[] {
    return ['ip', 'netns', 'exec', ns];
  }

  /** Drops every packet both ways on the veth (at a's end), as a dead cable or a broken router would. */
  cut(): void {
    this.rules('-I');
    this.isCut = true;
  }

  /** Takes the DROP rules out again. */
  restore(): void {
    if (!this.isCut) return;
    this.rules('-D');
    this.isCut = false;
  }

  private rules(op: '-I' | '-D'): void {
    const iptables = (...rule: string[]) => sh(['ip', 'netns', 'exec', this.a, 'iptables', ...rule]);
    iptables(op, 'INPUT', '-i', 'v0', '-j', 'DROP');
    iptables(op, 'OUTPUT', '-o', 'v0', '-j', 'DROP');
  }

  /** Deletes both namespaces (and with them the veth and the rules); safe to call twice. */
  destroy(): void {
    for (const ns of this.created.splice(0).reverse()) {
      try {
        sh(['ip', 'netns', 'del', ns]);
      } catch {
        // gone already
      }
    }
  }
}

// Runs inside the namespace: a unix socket (files cross namespaces) to a loopback port there.
const INNER_FORWARDER = `
const net = require('node:net');
const [path, port] = process.argv.slice(1);
net.createServer((c) => {
  const t = net.connect(Number(port), '127.0.0.1');
  c.pipe(t).pipe(c);
  c.on('error', () => t.destroy());
  t.on('error', () => c.destroy());
  c.on('close', () => t.destroy());
  t.on('close', () => c.destroy());
}).listen(path, () => process.stdout.write('ready\\n'));
`;

/** A loopback port of this process that reaches 127.0.0.1:`port` inside namespace `ns`. */
export interface PortBridge {
  port: number;
  close(): Promise<void>;
}

/**
 * Makes a loopback port inside a namespace reachable from this (the root) namespace without a veth
 * to it: a forwarder in the namespace listens on a unix socket in `dir`, and a TCP server here on
 * 127.0.0.1 port 0 pipes each connection to it. Mail clients (imapflow, nodemailer) then talk to a
 * namespaced node's SMTP and IMAP as they would on loopback.
 */
export async function bridgePort(ns: string, port: number, dir: string): Promise<PortBridge> {
  const path = join(dir, `bridge-${port}-${randomBytes(3).toString('hex')}.sock`);
  const inner: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, '-e', INNER_FORWARDER, path, String(port)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: inner.stdout! }).once('line', () => resolve());
    inner.once('exit', (code) => reject(new Error(`the forwarder in ${ns} exited with ${code}`)));
  });
  const sockets = new Set<Socket>();
  const server: Server = createServer((c) => {
    const t = connect(path);
    for (const s of [c, t]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    c.pipe(t).pipe(c);
    c.on('error', () => t.destroy());
    t.on('error', () => c.destroy());
    c.on('close', () => t.destroy());
    t.on('close', () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      if (inner.exitCode === null && inner.signalCode === null) {
        const exit = new Promise((r) => inner.once('exit', r));
        inner.kill('SIGKILL');
        await exit;
      }
    },
  };
}

/**
 * A `kith start` process inside a network namespace: its P2P side listens on the namespace's veth
 * address, and its SMTP and IMAP ports (loopback inside the namespace) are bridged to this
 * process's loopback, so settings() gives what a mail client here can use.
 */
export class NamespacedNode extends ProcessNode {
  private readonly bridges = new Map<number, Promise<PortBridge>>();

  constructor(
    options: Omit<NodeOptions, 'wrapper' | 'host'>,
    readonly ns: string,
    ip: string,
  ) {
    super({ ...options, wrapper: ['ip', 'netns', 'exec', ns], host: ip });
  }

  override async settings(): Promise<MailSettings> {
    const inner = await super.settings();
    const outer = async (port: number) => {
      let bridge = this.bridges.get(port);
      if (!bridge) {
        bridge = bridgePort(this.ns, port, this.dataDir);
        this.bridges.set(port, bridge);
      }
      return (await bridge).port;
    };
    return {
      ...inner,
      smtp: { host: '127.0.0.1', port: await outer(inner.smtp.port) },
      imap: { host: '127.0.0.1', port: await outer(inner.imap.port) },
    };
  }

  override async stop(): Promise<number | null> {
    const code = await super.stop();
    const bridges = [...this.bridges.values()];
    this.bridges.clear();
    await Promise.all(bridges.map(async (b) => (await b.catch(() => undefined))?.close()));
    return code;
  }
}

/**
 * A line of namespaces, host 0 — host 1 — … — host n-1, one veth pair between neighbours (`r<i>`
 * at the left end of link i, `l<i>` at the right) with private addresses 10.214.<i+1>.1 and .2,
 * no route out: a relay in the middle (test/streams/netns). Cut and limit one link at a time.
 */
export class NetnsLine {
  readonly hosts: { ns: string; addresses: string[] }[] = [];
  private readonly created: string[] = [];
  private readonly cutLinks = new Set<number>();

  constructor(prefix: string, count: number) {
    const tag = `${prefix}${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
    try {
      for (let i = 0; i < count; i++) {
        const ns = `${tag}${i}`;
        sh(['ip', 'netns', 'add', ns]);
        this.created.push(ns);
        sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
        this.hosts.push({ ns, addresses: [] });
      }
      for (let i = 0; i + 1 < count; i++) {
        const [left, right] = [this.hosts[i], this.hosts[i + 1]];
        sh([
          'ip',
          '-n',
          left.ns,
          'link',
          'add',
          `r${i}`,
          'type',
          'veth',
          'peer',
          'name',
          `l${i}`,
          'netns',
          right.ns,
        ]);
        for (const [host, dev, n] of [
          [left, `r${i}`, 1],
          [right, `l${i}`, 2],
        ] as const) {
          const ip = `10.214.${i + 1}.${n}`;
          sh(['ip', '-n', host.ns, 'addr', 'add', `${ip}/24`, 'dev', dev]);
          sh(['ip', '-n', host.ns, 'link', 'set', dev, 'up']);
          host.addresses.push(ip);
        }
      }
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  /** Runs a command inside host i's namespace. */
  exec(i: number, args: string[]): string {
    return sh(['ip', 'netns', 'exec', this.hosts[i].ns, ...args]);
  }

  /** Limits both directions of link i (host i — host i+1) to `rate` (tc tbf, e.g. "32mbit"). */
  limit(i: number, rate: string): void {
    for (const [ns, dev] of [
      [this.hosts[i].ns, `r${i}`],
      [this.hosts[i + 1].ns, `l${i}`],
    ])
      sh([
        'ip',
        'netns',
        'exec',
        ns,
        'tc',
        'qdisc',
        'replace',
        'dev',
        dev,
        'root',
        'tbf',
        'rate',
        rate,
        'burst',
        '64kb',
        'latency',
        '200ms',
      ]);
  }

  /** Drops every packet both ways on link i (at its left end), as a dead cable would. */
  cut(i: number): void {
    this.rules(i, '-I');
    this.cutLinks.add(i);
  }

  /** Takes link i's DROP rules out again. */
  restore(i: number): void {
    if (!this.cutLinks.delete(i)) return;
    this.rules(i, '-D');
  }

  private rules(i: number, op: '-I' | '-D'): void {
    const iptables = (...rule: string[]) =>
      sh(['ip', 'netns', 'exec', this.hosts[i].ns, 'iptables', ...rule]);
    iptables(op, 'INPUT', '-i', `r${i}`, '-j', 'DROP');
    iptables(op, 'OUTPUT', '-o', `r${i}`, '-j', 'DROP');
  }

  /** Deletes every namespace (and with them the veths, qdiscs and rules); safe to call twice. */
  destroy(): void {
    for (const ns of this.created.splice(0).reverse()) {
      try {
        sh(['ip', 'netns', 'del', ns]);
      } catch {
        // gone already
      }
    }
  }
}

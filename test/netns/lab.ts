// Network-namespace lab for NAT tests: a public relay host and hosts behind their own NAT.
// Creates only its own namespaces (unique names) and only touches addresses inside them;
// teardown deletes them, and with them every veth and iptables rule made here.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { AgentOptions } from './agent.ts';
import { netnsUnavailable, sh } from '../helpers/netns.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * "Public" addresses: libp2p treats TEST-NET and RFC 1918 ranges as private (NOTES.md), so the
 * public side gets routable-looking ones. They exist only inside our namespaces, which have no
 * route out, so no packet to them ever leaves this lab.
 */
export const PUBLIC_NET = '45.10.0';
export const RELAY_IP = `${PUBLIC_NET}.1`;

const run = sh;

// The namespace probe is shared with test/faults (test/helpers/netns.ts).
export { netnsUnavailable };

/** One host behind its own NAT. */
export interface NatSite {
  /** Namespace of the NAT router. */
  router: string;
  /** Namespace of the host behind it. */
  host: string;
  /** The host's private address. */
  hostIp: string;
  /** The router's public address (what the world sees). */
  publicIp: string;
}

/**
 * relay ns: bridge br0 with RELAY_IP, one port per NAT router.
 * router ns: wan (public IP on the bridge) + lan 192.168.N.1, MASQUERADE out of wan, no default route.
 * host ns: eth0 192.168.N.2, default route via its router.
 */
export class Lab {
  readonly relay: string;
  readonly sites: NatSite[] = [];
  private readonly namespaces: string[] = [];
  private readonly children = new Set<AgentProcess>();
  private readonly dirs: string[] = [];
  private readonly tag: string;

  /** `prefix` starts every namespace name (a test may create only names with its own prefix). */
  constructor(siteCount: number, prefix = 'kn') {
    this.tag = `${prefix}${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
    this.relay = `${this.tag}r`;
    try {
      this.addNamespace('r');
      run(['ip', '-n', this.relay, 'link', 'add', 'br0', 'type', 'bridge']);
      run(['ip', '-n', this.relay, 'addr', 'add', `${RELAY_IP}/24`, 'dev', 'br0']);
      run(['ip', '-n', this.relay, 'link', 'set', 'br0', 'up']);
      for (let i = 1; i <= siteCount; i++) this.addSite(i);
    } catch (err) {
      this.deleteNamespaces();
      throw err;
    }
  }

  private deleteNamespaces(): void {
    for (const name of this.namespaces.splice(0).reverse()) {
      try {
        run(['ip', 'netns', 'del', name]);
      } catch {
        // already gone
      }
    }
  }

  private addNamespace(suffix: string): string {
    const name = `${this.tag}${suffix}`;
    run(['ip', 'netns', 'add', name]);
    this.namespaces.push(name);
    run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  private addSite(n: number): void {
    const router = this.addNamespace(`n${n}`);
    const host = this.addNamespace(`h${n}`);
    const publicIp = `${PUBLIC_NET}.${n + 1}`;
    const hostIp = `192.168.${n}.2`;
    // The veth pairs are created inside our namespaces, never in the root one.
    run([
      'ip',
      '-n',
      this.relay,
      'link',
      'add',
      `p${n}`,
      'type',
      'veth',
      'peer',
      'name',
      'wan',
      'netns',
      router,
    ]);
    run(['ip', '-n', this.relay, 'link', 'set', `p${n}`, 'master', 'br0', 'up']);
    run(['ip', '-n', router, 'addr', 'add', `${publicIp}/24`, 'dev', 'wan']);
    run(['ip', '-n', router, 'link', 'set', 'wan', 'up']);
    run(['ip', '-n', router, 'link', 'add', 'lan', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host]);
    run(['ip', '-n', router, 'addr', 'add', `192.168.${n}.1/24`, 'dev', 'lan']);
    run(['ip', '-n', router, 'link', 'set', 'lan', 'up']);
    run(['ip', 'netns', 'exec', router, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const iptables = (...rule: string[]) => run(['ip', 'netns', 'exec', router, 'iptables', ...rule]);
    iptables('-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE');
    // Like a home router, drop unsolicited packets from outside. This matters for hole punching:
    // an accepted stray packet leaves a conntrack entry that makes MASQUERADE pick another
    // source port for our own later packet to that peer, so the STUN-learned port goes stale.
    const established = ['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'];
    iptables('-A', 'INPUT', '-i', 'wan', ...established);
    iptables('-A', 'INPUT', '-i', 'wan', '-j', 'DROP');
    iptables('-A', 'FORWARD', '-i', 'wan', ...established);
    iptables('-A', 'FORWARD', '-i', 'wan', '-j', 'DROP');
    run(['ip', '-n', host, 'addr', 'add', `${hostIp}/24`, 'dev', 'eth0']);
    run(['ip', '-n', host, 'link', 'set', 'eth0', 'up']);
    run(['ip', '-n', host, 'route', 'add', 'default', 'via', `192.168.${n}.1`]);
    this.sites.push({ router, host, hostIp, publicIp });
  }

  /** A data directory that outlives agent restarts and is removed at teardown. */
  dataDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'kith-netns-'));
    this.dirs.push(dir);
    return dir;
  }

  /** Runs a command inside one of our namespaces. */
  exec(namespace: string, args: string[]): string {
    if (!this.namespaces.includes(namespace)) throw new Error(`${namespace} is not a namespace of this lab`);
    return run(['ip', 'netns', 'exec', namespace, ...args]);
  }

  /** Starts an agent process inside a namespace and waits until it is ready. */
  async spawn(namespace: string, options: AgentOptions): Promise<AgentProcess> {
    if (!this.namespaces.includes(namespace)) throw new Error(`${namespace} is not a namespace of this lab`);
    const env = { ...process.env };
    delete env.NODE_OPTIONS; // Jest's --experimental-vm-modules is not for the child
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        namespace,
        process.execPath,
        '--import',
        'tsx',
        '--import',
        './common/polyfill.ts',
        'test/netns/agent.ts',
        JSON.stringify(options),
      ],
      { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const agent = new AgentProcess(options.name, child);
    this.children.add(agent);
    child.on('exit', () => this.children.delete(agent));
    await agent.ready;
    return agent;
  }

  /** Kills every agent still running and deletes our namespaces and directories. */
  async teardown(): Promise<void> {
    await Promise.allSettled([...this.children].map((c) => c.kill()));
    this.deleteNamespaces();
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

type Reply = { id: number; ok: boolean; result?: unknown; error?: string; code?: string };

/** A running test agent; request() sends one command and resolves with its result. */
export class AgentProcess {
  readonly ready: Promise<{ agentId: string }>;
  private nextId = 1;
  private readonly pending = new Map<number, (reply: Reply) => void>();
  private readonly stderr: string[] = [];
  private exited = false;
  private readonly exit: Promise<void>;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr.push(chunk.toString());
      if (this.stderr.length > 400) this.stderr.shift();
    });
    this.exit = new Promise((resolveExit) =>
      child.on('exit', (code, signal) => {
        this.exited = true;
        const error = `${name} exited (${signal ?? code}):\n${this.log()}`;
        for (const [, settle] of this.pending) settle({ id: 0, ok: false, error });
        this.pending.clear();
        resolveExit();
      }),
    );
    this.ready = new Promise((resolveReady, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        let message: Reply & { event?: string; agentId?: string };
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          return;
        }
        if (message.event === 'ready') resolveReady({ agentId: message.agentId! });
        else this.pending.get(message.id)?.(message);
      });
      void this.exit.then(() => reject(new Error(`${name} exited before it was ready:\n${this.log()}`)));
    });
  }

  /** The agent's recent log lines (stderr), for failure messages. */
  log(): string {
    return this.stderr.join('').split('\n').slice(-60).join('\n');
  }

  async request<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.exited) throw new Error(`${this.name} is not running`);
    const id = this.nextId++;
    const reply = await new Promise<Reply>((resolveReply) => {
      this.pending.set(id, resolveReply);
      this.child.stdin!.write(`${JSON.stringify({ id, cmd, args })}\n`);
    });
    this.pending.delete(id);
    if (!reply.ok) {
      const err = new Error(`${this.name} ${cmd}: ${reply.error}`) as Error & { code?: string };
      err.code = reply.code;
      throw err;
    }
    return reply.result as T;
  }

  /** Graceful stop (bounded), then SIGKILL. */
  async stop(timeoutMs = 5_000): Promise<void> {
    if (this.exited) return;
    void this.request('stop').catch(() => undefined);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stopped = await Promise.race([
      this.exit.then(() => true),
      new Promise<boolean>((resolveTimeout) => (timer = setTimeout(() => resolveTimeout(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (!stopped) await this.kill();
  }

  /** Kills the agent at once, as a crash or power loss would. */
  async kill(): Promise<void> {
    if (this.exited) return;
    // `ip netns exec` execs node in place, so this pid is node's own.
    this.child.kill('SIGKILL');
    await this.exit;
  }
}

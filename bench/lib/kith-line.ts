// A line of Kith agents, each in its own process: alice – carol – dave – bob. Each neighbour pair
// is linked by a real invitation; alice and bob are only each other's contacts (keys exchanged),
// so alice's mail to bob is discovered and onion-routed across 3 links (2 relays).
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { GatewaySettings } from '../../gateway/index.ts';
import { onInterrupt } from './cleanup.ts';
import { peakRss } from './stats.ts';
import { startWorker, type Worker } from './workers.ts';

export interface KithAgent extends Worker {
  fingerprint: string;
  agentId: string;
  email: string;
  publicKey: string;
  settings: GatewaySettings;
  redisPid?: number;
}

export const LINE_NAMES = ['alice', 'carol', 'dave', 'bob'];

export async function startKithLine(
  dir: string,
  options: {
    stallTimeoutMs?: number;
    /** Node options per agent (by name), e.g. --cpu-prof for a profile of that agent. */
    execArgv?: (name: string) => string[];
    /** Run each agent from a compiled bundle, not through tsx (workers.ts compiledWorker). */
    compiled?: boolean;
    /** Make each identity in a short-lived process of its own before the node starts. */
    separateInit?: boolean;
  } = {},
): Promise<{ agents: KithAgent[]; stop: () => Promise<void> }> {
  const workers: Worker[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(workers.map((w) => w.stop()));
  };
  const forget = onInterrupt(stopAll);
  const stop = async (): Promise<void> => {
    forget();
    await stopAll();
  };
  try {
    const agents: KithAgent[] = [];
    for (const name of LINE_NAMES) {
      // With `separateInit` the identity is made in a process of its own first, as `kith init`
      // makes it before `kith start`: the node's peak memory is then the node's alone.
      const passphrase = options.separateInit ? randomBytes(18).toString('base64url') : undefined;
      if (passphrase) {
        const init = startWorker('agent-worker.ts', `${name}-init`, [], { compiled: options.compiled });
        try {
          await init.call('identity', { name, dir: join(dir, name), passphrase });
        } finally {
          await init.stop();
        }
      }
      const w = startWorker('agent-worker.ts', name, options.execArgv?.(name), {
        compiled: options.compiled,
      });
      workers.push(w);
      const info = await w.call<Omit<KithAgent, keyof Worker>>('init', {
        name,
        dir: join(dir, name),
        stallTimeoutMs: options.stallTimeoutMs,
        passphrase,
      });
      agents.push(Object.assign(w, info));
    }
    for (let i = 0; i + 1 < agents.length; i++) await link(agents[i]!, agents[i + 1]!);
    const alice = agents[0]!;
    const bob = agents[agents.length - 1]!;
    await alice.call('contact', { publicKey: bob.publicKey });
    await bob.call('contact', { publicKey: alice.publicKey });
    return { agents, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * One invitation from `inviter`, redeemed by `invitee`. A redemption the inviter cut off
 * mid-exchange ("Cannot write to a stream that is closed", seen on a loaded machine; cause not
 * found, see the demo network's retry) is tried again with a new code, up to 3 times.
 */
async function link(inviter: KithAgent, invitee: KithAgent): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const code = await inviter.call<string>('invite');
    try {
      await invitee.call('accept', { code });
      return;
    } catch (err) {
      if (attempt >= 3 || !/stream that is closed|stream has been reset/.test((err as Error).message))
        throw err;
      process.stderr.write(`  ${invitee.name}: invitation cut off, trying again with a new code\n`);
    }
  }
}

/** Peak RSS of every agent process and of its private redis-server. */
export function agentPeaks(agents: KithAgent[]): { name: string; bytes: number | undefined }[] {
  const out: { name: string; bytes: number | undefined }[] = [];
  for (const a of agents) {
    out.push({ name: `${a.name} (node)`, bytes: a.peak() });
    if (a.redisPid) out.push({ name: `${a.name} (redis-server)`, bytes: peakRss(a.redisPid) });
  }
  return out;
}

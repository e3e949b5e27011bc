import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { KithError } from '../../common/errors.ts';
import { createLogger } from '../../common/logger.ts';
import { deepMerge, settingOverride, type DeepPartial } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { demoTopology } from '../demo/topology.ts';
import type { DemoAgent } from '../demo/network.ts';
import { ignoreClosedStdout, listenForStopSignals, print } from '../context.ts';
import { settingsText } from '../settings.ts';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run a demo network on loopback: alice and bob linked only through carol, each with SMTP and IMAP',
    )
    .option(
      '--agents <n>',
      'how many agents (3: alice, carol, bob; more add relays that are second paths)',
      '3',
    )
    .option('--dir <dir>', "where the agents' data directories go (default: a new temporary directory)")
    .option('--json', 'print one line of JSON once every agent accepts connections')
    .option('--stall-timeout <ms>', 're-send along another path after this much silence', '5000')
    .option(
      '--set <key=value>',
      'a setting for every agent, e.g. spam.forwardFloorPerHour=100000 (repeatable; keys as in config.yaml)',
      (text: string, earlier: string[]) => [...earlier, text],
      [] as string[],
    )
    .action(
      async (
        options: { agents: string; dir?: string; json?: boolean; stallTimeout: string; set: string[] },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals() as { logLevel?: string };
        const log = createLogger({ level: globals.logLevel ?? 'warn' });
        const agents = Number(options.agents);
        try {
          demoTopology(agents);
        } catch (err) {
          command.error(`--agents takes a whole number: ${(err as Error).message}`, { exitCode: 2 });
        }
        const overrides = options.set.reduce<Record<string, unknown>>(
          (all, text) => deepMerge(all, settingOverride(text)),
          {},
        ) as DeepPartial<Config>;
        const given = options.dir ? resolve(options.dir) : undefined;
        if (given) refuseEarlierRun(given, demoTopology(agents).names);
        ignoreClosedStdout();
        // Listening before anything starts: a signal during startup stops what has started
        // (the shared redis-server above all) instead of leaving it behind.
        const signals = listenForStopSignals();
        // A directory the demo made for itself is removed on the way out; one given with --dir stays.
        const dir = given ?? mkdtempSync(join(tmpdir(), 'kith-demo-'));
        try {
          if (!options.json) print(`Starting ${agents} agents in ${dir} ...`);
          // the nodes are loaded only here, so other commands start without them
          const { startDemoNetwork } = await import('../demo/network.ts');
          const network = await startDemoNetwork({
            dir,
            agents,
            log,
            stallTimeoutMs: Number(options.stallTimeout),
            overrides,
          });
          if (!signals.signal) {
            if (options.json) print(JSON.stringify({ agents: network.agents.map(describe) }));
            else printHuman(network.agents);
            // Any agent asked to stop (`kith --data-dir DIR/carol stop`) stops alone; the demo goes on.
            for (const agent of network.agents) {
              void agent.node.stopRequested.then(() => agent.node.stop());
            }
          }
          await signals.received;
          await network.stop();
          if (!options.json) print('Demo stopped.');
        } finally {
          signals.dispose();
          if (!given) rmSync(dir, { recursive: true, force: true });
        }
      },
    );
}

/** The agents' data directories of an earlier run hold identities: say so before touching anything. */
function refuseEarlierRun(dir: string, names: string[]): void {
  const earlier = names.filter((name) => existsSync(join(dir, name)));
  if (earlier.length > 0) {
    throw new KithError(
      'ERR_IDENTITY_EXISTS',
      `${dir} holds an earlier demo run (${earlier.join(', ')})`,
      'give --dir a new or empty directory, or leave --dir out for a temporary one',
    );
  }
}

function describe(agent: DemoAgent): Record<string, unknown> {
  const s = agent.settings;
  return {
    name: agent.name,
    email: s.email,
    fingerprint: agent.node.identity.fingerprint,
    peerId: agent.node.identity.agentId,
    dataDir: agent.dataDir,
    smtp: { host: s.smtp.host, port: s.smtp.port, user: s.user, pass: s.pass, tls: s.smtp.tls },
    imap: { host: s.imap.host, port: s.imap.port, user: s.user, pass: s.pass, tls: s.imap.tls },
    autoconfig: s.autoconfig,
  };
}

function printHuman(agents: DemoAgent[]): void {
  print('');
  for (const agent of agents) {
    print(settingsText(agent.name, agent.node.identity.fingerprint, agent.settings));
    print(`  data dir      ${agent.dataDir}`);
    print('');
  }
  print('alice and bob trust only the relays between them: write from alice to bob@demo.kith');
  print('and the mail is discovered and routed through them. Follow a message with');
  print(`  npx kith --data-dir ${agents[0].dataDir} track MESSAGE_ID   (the id is in the 250 reply)`);
  print('Stop with Ctrl-C.');
}

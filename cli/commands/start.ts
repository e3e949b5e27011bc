import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { isKithError } from '../../common/errors.ts';
import { createLogger } from '../../common/logger.ts';
import { dataPaths } from '../../store/datadir.ts';
import { configFrom, ignoreClosedStdout, listenForStopSignals, print } from '../context.ts';
import { obtainPassphrase } from '../passphrase.ts';
import { initialiseNode } from './init.ts';
import { settingsText } from '../settings.ts';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the node (agent and gateway) until SIGINT/SIGTERM; creates the identity on first run')
    .option('--name <name>', 'on first run: your name')
    .option('--email <address>', 'on first run: your e-mail address (asked on a terminal)')
    .action(async (options: { name?: string; email?: string }, command: Command) => {
      const config = configFrom(command);
      const log = createLogger({ level: config.logLevel });
      ignoreClosedStdout();
      // Listening before anything starts: a signal during startup stops what has started
      // (the private redis-server above all) instead of leaving it behind.
      const signals = listenForStopSignals();
      const abort = new AbortController();
      void signals.received.then(() => abort.abort());
      try {
        let passphrase: string;
        try {
          if (!existsSync(dataPaths(config.dataDir).database)) {
            const created = await initialiseNode(config, options, { signal: abort.signal });
            const { identity } = created;
            passphrase = created.passphrase;
            print(
              `Created ${identity.name} <${identity.email}> (${identity.fingerprint}) in ${config.dataDir}`,
            );
          } else {
            passphrase = await obtainPassphrase(config, { signal: abort.signal });
          }
        } catch (err) {
          if (signals.signal && isKithError(err, 'ERR_INTERRUPTED')) return;
          throw err;
        }
        if (signals.signal) return;
        // imported here, not at the top: every other command starts without loading the node
        const { KithNode } = await import('../../agent/node.ts');
        const node = new KithNode({ config, passphrase, log });
        // KithNode.start stops what it started when it fails; a signal meanwhile waits for it.
        await node.start();
        if (!signals.signal) {
          print(`Kith node running: ${node.identity.name}`);
          print(settingsText(node.identity.name, node.identity.fingerprint, node.mailSettings));
          print(`  agent         ${node.identity.agentId}`);
          for (const address of node.links.multiaddrs()) print(`  p2p           ${address.toString()}`);
          print('Stop with Ctrl-C.');
          void node.stopRequested.then(() => signals.trigger('kith stop'));
        }
        log.info({ signal: await signals.received }, 'stopping');
        await node.stop();
        print('Kith node stopped.');
      } finally {
        signals.dispose();
      }
    });
}

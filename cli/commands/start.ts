import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { KithNode } from '../../agent/node.ts';
import { createLogger } from '../../common/logger.ts';
import { dataPaths } from '../../store/datadir.ts';
import { configFrom, print } from '../context.ts';
import { obtainPassphrase } from '../passphrase.ts';
import { initialiseNode } from './init.ts';
import { settingsText } from '../settings.ts';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the node (agent and gateway) until SIGINT/SIGTERM; creates the identity on first run')
    .option('--name <name>', 'on first run: your name')
    .option('--email <address>', 'on first run: your e-mail address')
    .action(async (options: { name?: string; email?: string }, command: Command) => {
      const config = configFrom(command);
      const log = createLogger({ level: config.logLevel });
      if (!existsSync(dataPaths(config.dataDir).database)) {
        const identity = await initialiseNode(config, options, true);
        print(`Created ${identity.name} <${identity.email}> (${identity.fingerprint}) in ${config.dataDir}`);
      }
      const passphrase = await obtainPassphrase(config);
      const node = new KithNode({ config, passphrase, log });
      await node.start();
      print(`Kith node running: ${node.identity.name}`);
      print(settingsText(node.identity.name, node.identity.fingerprint, node.mailSettings));
      print(`  agent         ${node.identity.agentId}`);
      for (const address of node.links.multiaddrs()) print(`  p2p           ${address.toString()}`);
      print('Stop with Ctrl-C.');
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          log.info({ signal }, 'stopping');
          resolve();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        void node.stopRequested.then(() => stop('kith stop'));
      });
      await node.stop();
      print('Kith node stopped.');
    });
}

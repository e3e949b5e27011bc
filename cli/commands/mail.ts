import type { Command } from 'commander';
import type { GatewaySettings } from '../../gateway/index.ts';
import { print } from '../context.ts';
import { nodeCall } from '../node-call.ts';
import { settingsText } from '../settings.ts';

interface Status {
  fingerprint: string;
  email: string;
  agentId: string;
  addresses: string[];
  mail: GatewaySettings;
}

export function registerMail(program: Command): void {
  program
    .command('mail-settings')
    .description('print how to set up a mail client (Thunderbird autoconfig URL and manual settings)')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const status = await nodeCall<Status>(command, 'status');
      if (options.json) return print(JSON.stringify(status.mail));
      print(settingsText(status.email, status.fingerprint, status.mail));
    });

  program
    .command('status')
    .description("print the running node's identity and addresses")
    .action(async (_options: unknown, command: Command) => {
      const status = await nodeCall<Status>(command, 'status');
      print(`${status.email}  ${status.fingerprint}`);
      print(`  agent  ${status.agentId}`);
      for (const a of status.addresses) print(`  listening  ${a}`);
    });

  program
    .command('stop')
    .description('stop the node running on this data directory')
    .action(async (_options: unknown, command: Command) => {
      await nodeCall(command, 'stop');
      print('stopping');
    });
}

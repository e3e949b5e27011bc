import { Command, CommanderError } from 'commander';
import { describeError } from '../common/errors.ts';
import { registerAgent } from './commands/agent.ts';
import { registerDemo } from './commands/demo.ts';
import { registerId } from './commands/id.ts';
import { registerInit } from './commands/init.ts';
import { registerBridge } from './commands/bridge.ts';
import { registerLists } from './commands/lists.ts';
import { registerMail } from './commands/mail.ts';
import { registerMessages } from './commands/messages.ts';
import { registerNetwork } from './commands/network.ts';
import { registerStart } from './commands/start.ts';
import { registerStream } from './commands/stream.ts';

/** Builds the `kith` command line; every command gets --help from commander. */
export function buildProgram(): Command {
  const program = new Command('kith')
    .description('Kith: friend-to-friend, end-to-end encrypted mail. Mail clients use the local gateway.')
    .option('-d, --data-dir <dir>', "the node's data directory (default ~/.kith, or KITH_DATA_DIR)")
    .option('-c, --config <file>', 'configuration file (default <data-dir>/config.yaml)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  registerInit(program);
  registerId(program);
  registerStart(program);
  registerNetwork(program);
  registerAgent(program);
  registerMessages(program);
  registerStream(program);
  registerMail(program);
  registerLists(program);
  registerBridge(program);
  registerDemo(program);
  return program;
}

/** Runs the CLI; returns the exit code. Errors print one line (what and what to do), never a stack. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode;
    }
    process.stderr.write(`kith: ${describeError(err)}\n`);
    return 1;
  }
}

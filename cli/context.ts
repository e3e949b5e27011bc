import type { Command } from 'commander';
import { loadConfig, type DeepPartial } from '../config/load.ts';
import type { Config } from '../config/schema.ts';

/** Options every command accepts (declared on the root program). */
export interface GlobalOptions {
  dataDir?: string;
  config?: string;
  logLevel?: string;
}

/** Loads the configuration with the global flags applied on top. */
export function configFrom(command: Command, extra: DeepPartial<Config> = {}): Readonly<Config> {
  const globals = command.optsWithGlobals() as GlobalOptions;
  const overrides: DeepPartial<Config> = { ...extra };
  if (globals.dataDir) overrides.dataDir = globals.dataDir;
  if (globals.logLevel) overrides.logLevel = globals.logLevel as Config['logLevel'];
  return loadConfig({ file: globals.config, overrides });
}

/** Prints to stdout; commands print results there and diagnostics to stderr. */
export function print(line = ''): void {
  process.stdout.write(line + '\n');
}

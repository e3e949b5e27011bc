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

/**
 * SIGINT/SIGTERM, listened to from the moment a long-running command begins: a signal during
 * startup lets the command stop what it started (a node, its redis-server) instead of Node
 * dying at once and leaving them behind. Later signals while stopping are ignored.
 */
export interface StopSignals {
  /** Resolves with the first signal's name (or another reason given to `trigger`). */
  readonly received: Promise<string>;
  /** The first signal, once one arrived. */
  readonly signal: string | undefined;
  /** Stops as if a signal arrived (e.g. `kith stop`). */
  trigger(reason: string): void;
  /** Removes the listeners. */
  dispose(): void;
}

export function listenForStopSignals(): StopSignals {
  let first: string | undefined;
  let resolve!: (signal: string) => void;
  const received = new Promise<string>((r) => (resolve = r));
  const trigger = (reason: string): void => {
    if (first !== undefined) return;
    first = reason;
    resolve(reason);
  };
  const onSignal = (signal: NodeJS.Signals): void => trigger(signal);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    received,
    get signal() {
      return first;
    },
    trigger,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/**
 * Stdout closed by the reader (`kith start | head -2`) must not crash a running node: the write
 * error EPIPE is dropped and the command goes on without stdout.
 */
export function ignoreClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

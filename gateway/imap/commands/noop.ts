import { ANY, ok, type CommandSpec } from '../context.ts';

/** NOOP and CHECK: nothing to do but report pending updates (written by the connection). */
export const noop: CommandSpec = {
  states: ANY,
  async run() {
    return ok('NOOP completed');
  },
};

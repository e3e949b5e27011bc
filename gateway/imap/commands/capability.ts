import { ANY, ok, type CommandSpec } from '../context.ts';
import { noMore } from './args.ts';

/** CAPABILITY (RFC 3501 6.1.1). */
export const capability: CommandSpec = {
  states: ANY,
  async run(ctx, cmd) {
    noMore(cmd.args, 0);
    ctx.untagged(`CAPABILITY ${ctx.capabilities().join(' ')}`);
    return ok('CAPABILITY completed');
  },
};

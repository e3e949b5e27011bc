import { ANY, ok, type CommandSpec } from '../context.ts';
import { noMore } from './args.ts';

/** LOGOUT (RFC 3501 6.1.3). */
export const logout: CommandSpec = {
  states: ANY,
  async run(ctx, cmd) {
    noMore(cmd.args, 0);
    ctx.untagged('BYE logging out');
    ctx.select(null);
    ctx.logout();
    return ok('LOGOUT completed');
  },
};

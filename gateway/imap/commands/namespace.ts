import { AUTHED, ok, type CommandSpec } from '../context.ts';
import { noMore } from './args.ts';

/** NAMESPACE (RFC 2342): one personal namespace, delimiter '/'. */
export const namespace: CommandSpec = {
  states: AUTHED,
  async run(ctx, cmd) {
    noMore(cmd.args, 0);
    ctx.untagged('NAMESPACE (("" "/")) NIL NIL');
    return ok('NAMESPACE completed');
  },
};

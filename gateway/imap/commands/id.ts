import { ANY, ok, type CommandSpec } from '../context.ts';

/** ID (RFC 2971): we say who we are; what the client says is only logged. */
export const id: CommandSpec = {
  states: ANY,
  async run(ctx, cmd) {
    const arg = cmd.args[0];
    if (arg && arg.t === 'list') {
      const pairs: Record<string, string> = {};
      for (let i = 0; i + 1 < arg.v.length && i < 60; i += 2) {
        const k = arg.v[i]!;
        const v = arg.v[i + 1]!;
        if ((k.t === 'string' || k.t === 'atom') && (v.t === 'string' || v.t === 'atom'))
          pairs[k.v.slice(0, 64)] = v.v.slice(0, 256);
      }
      ctx.log.debug({ client: pairs }, 'imap client id');
    }
    ctx.untagged('ID ("name" "Kith" "vendor" "Kith")');
    return ok('ID completed');
  },
};

import { bad, ok, type CommandSpec } from '../context.ts';
import { noMore } from './args.ts';

/** STARTTLS (RFC 3501 6.2.1): the handshake starts right after the tagged OK. */
export const starttls: CommandSpec = {
  states: ['notauth'],
  async run(ctx, cmd) {
    noMore(cmd.args, 0);
    if (ctx.secure) return bad('already under TLS');
    return { ...ok('begin TLS negotiation now'), after: () => ctx.startTls() };
  },
};

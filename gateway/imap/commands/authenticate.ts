import { bad, no, type CommandSpec } from '../context.ts';
import { atomArg, noMore } from './args.ts';
import { authenticate as check } from './login.ts';
import { textOf } from '../values.ts';

/** AUTHENTICATE PLAIN (RFC 4616), with SASL-IR (RFC 4959) initial response. */
export const authenticateCommand: CommandSpec = {
  states: ['notauth'],
  async run(ctx, cmd) {
    const mech = atomArg(cmd.args, 0, 'mechanism');
    noMore(cmd.args, 2);
    if (mech !== 'PLAIN') return no('only PLAIN is supported', 'CANNOT');
    if (!ctx.secure && !ctx.options.allowInsecureAuth) return no('use STARTTLS first', 'PRIVACYREQUIRED');
    let response = textOf(cmd.args[1]);
    if (response === null) {
      ctx.continuation('');
      response = await ctx.readLine();
    }
    if (response === '*') return bad('authentication cancelled');
    if (response === '=') response = '';
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(response)) return bad('invalid base64');
    const parts = Buffer.from(response, 'base64').toString('utf8').split('\0');
    if (parts.length !== 3) return bad('malformed PLAIN response');
    const [authz, user, pass] = parts as [string, string, string];
    if (authz !== '' && authz !== user) return no('cannot act as another user', 'AUTHORIZATIONFAILED');
    return check(ctx, user, pass);
  },
};

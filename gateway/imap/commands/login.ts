import { no, ok, type CommandContext, type CommandSpec, type Result } from '../context.ts';
import { noMore, stringArg } from './args.ts';

/** Checks credentials and moves to the authenticated state; shared by LOGIN and AUTHENTICATE. */
export async function authenticate(ctx: CommandContext, user: string, pass: string): Promise<Result> {
  if (!ctx.secure && !ctx.options.allowInsecureAuth) {
    return no('use STARTTLS first', 'PRIVACYREQUIRED');
  }
  const result = await ctx.auth.check(user, pass, ctx.remote.replace(/:\d+$/, ''), 'imap');
  if (!result.ok || !result.account) return no('invalid credentials', 'AUTHENTICATIONFAILED');
  ctx.login(result.account);
  return ok('logged in', `CAPABILITY ${ctx.capabilities().join(' ')}`);
}

/** LOGIN (RFC 3501 6.2.3). */
export const login: CommandSpec = {
  states: ['notauth'],
  async run(ctx, cmd) {
    const user = stringArg(cmd.args, 0, 'user name');
    const pass = stringArg(cmd.args, 1, 'password');
    noMore(cmd.args, 2);
    return authenticate(ctx, user, pass);
  },
};

import { AUTHED, ok, type CommandSpec } from '../context.ts';
import { mailboxArg, noMore } from './args.ts';

/** CREATE (RFC 3501 6.3.3): a trailing delimiter only says "will have children". */
export const create: CommandSpec = {
  states: AUTHED,
  async run(ctx, cmd) {
    const name = mailboxArg(ctx, cmd.args, 0).replace(/\/+$/, '');
    noMore(cmd.args, 2);
    // Create missing parents too, as RFC 3501 asks.
    const levels = name.split('/');
    for (let i = 1; i < levels.length; i++) {
      const parent = levels.slice(0, i).join('/');
      if (!ctx.store.mailboxes().some((m) => m.name === parent)) ctx.store.createMailbox(parent);
    }
    ctx.store.createMailbox(name);
    return ok('CREATE completed');
  },
};

/** DELETE (RFC 3501 6.3.4). */
export const del: CommandSpec = {
  states: AUTHED,
  async run(ctx, cmd) {
    const name = mailboxArg(ctx, cmd.args, 0);
    noMore(cmd.args, 1);
    ctx.store.deleteMailbox(name);
    return ok('DELETE completed');
  },
};

/** RENAME (RFC 3501 6.3.5). */
export const rename: CommandSpec = {
  states: AUTHED,
  async run(ctx, cmd) {
    const from = mailboxArg(ctx, cmd.args, 0);
    const to = mailboxArg(ctx, cmd.args, 1);
    noMore(cmd.args, 2);
    ctx.store.renameMailbox(from, to);
    return ok('RENAME completed');
  },
};

function subscription(on: boolean): CommandSpec {
  return {
    states: AUTHED,
    async run(ctx, cmd) {
      const name = mailboxArg(ctx, cmd.args, 0);
      noMore(cmd.args, 1);
      ctx.store.setSubscribed(name, on);
      return ok(`${on ? 'SUBSCRIBE' : 'UNSUBSCRIBE'} completed`);
    },
  };
}

/** SUBSCRIBE (RFC 3501 6.3.6). */
export const subscribe = subscription(true);
/** UNSUBSCRIBE (RFC 3501 6.3.7). */
export const unsubscribe = subscription(false);

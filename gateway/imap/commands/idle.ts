import { SELECTED, AUTHED, ok, bad, type CommandSpec } from '../context.ts';
import { noMore } from './args.ts';

/**
 * IDLE (RFC 2177). Updates are written as soon as the store reports them, so a delivery is
 * heard within milliseconds; the wait for DONE and the wait for changes run side by side.
 */
export const idle: CommandSpec = {
  states: AUTHED.concat(SELECTED),
  async run(ctx, cmd) {
    noMore(cmd.args, 0);
    ctx.continuation('idling');
    let done = false;
    const line = ctx.readLine().then(
      (l) => {
        done = true;
        return l;
      },
      () => {
        done = true;
        return null;
      },
    );
    while (!done) {
      ctx.flushUpdates(true);
      await Promise.race([line, ctx.waitForChange(60_000)]);
    }
    const text = await line;
    if (text === null) return ok('IDLE ended');
    if (text.toUpperCase() !== 'DONE') return bad('expected DONE');
    return ok('IDLE terminated');
  },
};

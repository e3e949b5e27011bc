import { AUTHED, ok, type CommandSpec } from '../context.ts';
import { textOf } from '../values.ts';

const SUPPORTED = new Set(['CONDSTORE', 'QRESYNC', 'UTF8=ACCEPT']);

/**
 * ENABLE (RFC 5161): CONDSTORE, QRESYNC (RFC 7162), and UTF8=ACCEPT (RFC 6855: mailbox names in UTF-8 both ways,
 * APPEND's UTF8 (~{n}) form, SEARCH without CHARSET); unknown extensions are ignored.
 */
export const enable: CommandSpec = {
  states: AUTHED,
  async run(ctx, cmd) {
    const done: string[] = [];
    for (const a of cmd.args) {
      const name = (textOf(a) ?? '').toUpperCase();
      if (SUPPORTED.has(name) && !ctx.enabled.has(name)) {
        ctx.enabled.add(name);
        done.push(name);
        // QRESYNC implies CONDSTORE (RFC 7162 3.2.3).
        if (name === 'QRESYNC') ctx.enabled.add('CONDSTORE');
      }
    }
    ctx.untagged(`ENABLED${done.length ? ' ' + done.join(' ') : ''}`);
    return ok('ENABLE completed');
  },
};

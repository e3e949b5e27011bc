import { readFile } from 'node:fs/promises';
import { KithError } from '../../../common/errors.ts';
import { AUTHED, ok, type CommandSpec } from '../context.ts';
import { parseDateTime } from '../format.ts';
import { ParseError, textOf, type Literal } from '../values.ts';
import { flagList, mailboxArg } from './args.ts';

/** APPEND (RFC 3501 6.3.11) with UIDPLUS APPENDUID and APPENDLIMIT; one message per command. */
export const append: CommandSpec = {
  states: AUTHED,
  async run(ctx, cmd) {
    const name = mailboxArg(ctx, cmd.args, 0);
    let i = 1;
    let flags: string[] = [];
    let date: Date | undefined;
    if (cmd.args[i]?.t === 'list') flags = flagList(cmd.args[i++]).filter((f) => f !== '\\Recent');
    const maybeDate = cmd.args[i];
    if (maybeDate?.t === 'string') {
      const d = parseDateTime(maybeDate.v);
      if (!d) throw new ParseError('invalid date-time');
      date = d;
      i++;
    }
    let msg = cmd.args[i];
    // RFC 6855 4: after ENABLE UTF8=ACCEPT the message may come as UTF8 (~{n}): a literal8.
    const inner = cmd.args[i + 1];
    if (msg?.t === 'atom' && msg.v.toUpperCase() === 'UTF8') {
      if (!ctx.enabled.has('UTF8=ACCEPT')) throw new ParseError('UTF8 needs ENABLE UTF8=ACCEPT');
      if (inner?.t !== 'list' || inner.v.length !== 2 || textOf(inner.v[0]) !== '~')
        throw new ParseError('UTF8 needs (~{n} message)');
      msg = inner.v[1];
      i++;
    }
    if (!msg || msg.t !== 'literal') throw new ParseError('APPEND needs a message literal');
    if (cmd.args.length > i + 1) throw new ParseError('MULTIAPPEND is not supported');
    if (msg.size > ctx.options.appendLimit) {
      throw new KithError('ERR_IMAP_TOOBIG', 'message larger than APPENDLIMIT', 'send a smaller message');
    }
    if (msg.size === 0) throw new ParseError('empty message');
    const raw = await literalBytes(msg);
    const box = ctx.store.mailbox(name);
    const res = await ctx.store.append({
      mailbox: box.name,
      raw,
      flags,
      internalDate: date,
      origin: ctx.origin,
    });
    return ok('APPEND completed', `APPENDUID ${res.uidValidity} ${res.uid}`);
  },
};

/** The bytes of a literal (read back from disk when it was spilled). */
export async function literalBytes(lit: Literal): Promise<Buffer> {
  if (lit.data) return lit.data;
  if (lit.file) return readFile(lit.file);
  return Buffer.from(textOf(lit) ?? '', 'latin1');
}

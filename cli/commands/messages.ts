import type { Command } from 'commander';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { JobProgress } from '../../agent/queue/outbox.ts';
import { isKithError } from '../../common/errors.ts';
import { print } from '../context.ts';
import { nodeCall } from '../node-call.ts';
import { printPostTrack, type PostTrack } from './lists.ts';
import { RateMeter, formatLeft, formatRate } from './progress.ts';

type Tracked = JobProgress & { id: string; to: string; size: number; reason?: string };

export function registerMessages(program: Command): void {
  program
    .command('send')
    .description('send a short text or a file of any size to an entity')
    .argument('<recipient>', "a contact's e-mail address or an entity fingerprint")
    .option('--text <text>', 'a short message')
    .option('--file <path>', 'a file of any size (streamed in authenticated chunks)')
    .option('--wait', 'follow the message until it is delivered')
    .action(
      async (to: string, options: { text?: string; file?: string; wait?: boolean }, command: Command) => {
        if ((options.text === undefined) === (options.file === undefined)) {
          command.error('give exactly one of --text or --file', { exitCode: 2 });
        }
        const sent = await nodeCall<{ id: string; to: string }>(command, 'send', {
          to,
          text: options.text,
          file: options.file === undefined ? undefined : resolve(options.file),
        });
        print(sent.id);
        if (options.wait) await follow(command, sent.id);
      },
    );

  program
    .command('outbox')
    .description('list recent outbound messages and where they are')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const entries = await nodeCall<(Tracked & { recipient: string; createdAt: number })[]>(
        command,
        'outbox',
      );
      if (options.json) return print(JSON.stringify(entries));
      for (const e of entries) {
        const last = e.hops.at(-1);
        print(
          `${e.id}  ${new Date(e.createdAt).toISOString()}  to ${e.recipient}  ${e.state}${last ? `  (${describeHop(last)})` : ''}`,
        );
      }
    });

  program
    .command('track')
    .description('show where an outbound message is, hop by hop (live until delivered)')
    .argument('<message-id>', 'the id `kith send` printed')
    .option('--once', 'print the current state and exit')
    .action(async (id: string, options: { once?: boolean }, command: Command) => {
      let notSentHere: unknown;
      try {
        if (options.once) printTrack(await nodeCall<Tracked>(command, 'track', { id, follow: false }));
        else await follow(command, id);
      } catch (err) {
        if (!isKithError(err, 'ERR_UNKNOWN_MESSAGE')) throw err;
        notSentHere = err;
      }
      // On a node that hosts lists the id may be a post to one of them (sent from here or by
      // anyone else): then every subscriber's copy and where it is.
      const post = await nodeCall<PostTrack | null>(command, 'list.post', { id }).catch(() => null);
      if (!post) {
        if (notSentHere) throw notSentHere;
        return;
      }
      print(`post to the list ${post.list}, one copy per subscriber:`);
      printPostTrack(post, true);
    });
}

/** Live view: a progress bar (rate, time left) for chunked messages, a line per hop event. */
async function follow(command: Command, id: string): Promise<void> {
  let bar: cliProgress.SingleBar | undefined;
  let shown = 0;
  const meter = new RateMeter();
  const show = (t: Tracked): void => {
    for (const hop of t.hops.slice(shown)) {
      bar?.stop();
      bar = undefined;
      print(`${new Date(hop.at).toISOString()}  ${describeHop(hop)}`);
    }
    shown = t.hops.length;
    if (t.chunks && t.state !== 'delivered') {
      const bytes = Math.round((t.size * t.chunks.acked) / Math.max(1, t.chunks.total));
      meter.sample(bytes, Date.now());
      const payload = { rate: formatRate(meter.rate()), left: formatLeft(meter.secondsLeft(t.size)) };
      bar ??= new cliProgress.SingleBar(
        {
          format: 'chunks [{bar}] {value}/{total} {percentage}% | {rate} | {left} left',
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      );
      if (!bar.isActive) bar.start(t.chunks.total, t.chunks.acked, payload);
      bar.update(t.chunks.acked, payload);
    }
  };
  const final = await nodeCall<Tracked>(command, 'track', { id, follow: true }, (u) => show(u as Tracked));
  show(final);
  bar?.stop();
  print(`state: ${final.state}${final.reason ? `: ${final.reason}` : ''}`);
  if (final.state === 'failed') process.exitCode = 1;
}

function printTrack(t: Tracked): void {
  print(`message ${t.id} to ${t.to} (${t.size} bytes): ${t.state}${t.reason ? `: ${t.reason}` : ''}`);
  for (const hop of t.hops) print(`  ${new Date(hop.at).toISOString()}  ${describeHop(hop)}`);
  if (t.chunks) print(`  chunks acknowledged: ${t.chunks.acked}/${t.chunks.total}`);
}

function describeHop(hop: { hop: number; agent?: string; event: string }): string {
  if (hop.event === 'delivered') return "delivered into the recipient's mailbox";
  return `hop ${hop.hop} ${hop.event}${hop.agent ? ` (${hop.agent})` : ''}`;
}

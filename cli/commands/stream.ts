import type { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { shouldCut } from '../../agent/streams/live-format.ts';
import { KithError } from '../../common/errors.ts';
import { print } from '../context.ts';
import { nodeCall } from '../node-call.ts';

/** Segments written but not yet durable at the node; past this the input is not read further. */
const MAX_IN_FLIGHT = 4;

/**
 * Cuts an input of unknown length into segments (shouldCut: by size, or by age so a slow input
 * still reaches the viewer) and hands them to `write` one after the other.
 */
export class Segmenter {
  private parts: Buffer[] = [];
  private size = 0;
  private since = 0;
  private timer?: NodeJS.Timeout;
  private chain: Promise<unknown> = Promise.resolve();
  private inFlight = 0;
  private failure?: Error;

  constructor(
    private readonly write: (data: Buffer, final: boolean) => Promise<unknown>,
    private readonly now: () => number = Date.now,
    private readonly ageMs = 250,
  ) {}

  /** Adds input; resolves when there is room for more (backpressure from the node). */
  async push(data: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.size === 0) {
      this.since = this.now();
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.cut(false), this.ageMs);
    }
    this.parts.push(data);
    this.size += data.length;
    if (shouldCut(this.size, this.now() - this.since)) this.cut(false);
    while (this.inFlight >= MAX_IN_FLIGHT) await this.chain;
  }

  /** The input ended: the last segment carries `final` (and the length, at the node). */
  async end(): Promise<void> {
    this.cut(true);
    await this.chain;
    if (this.failure) throw this.failure;
  }

  private cut(final: boolean): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.size === 0 && !final) return;
    const data = Buffer.concat(this.parts);
    this.parts = [];
    this.size = 0;
    this.inFlight++;
    this.chain = this.chain
      .then(() => (this.failure ? undefined : this.write(data, final)))
      .catch((err: Error) => (this.failure ??= err))
      .finally(() => this.inFlight--);
  }
}

export function registerStream(program: Command): void {
  program
    .command('stream')
    .description(
      'send a live stream (stdin or a file read as it comes) to an entity; ends when the input ends',
    )
    .argument('<recipient>', "a contact's e-mail address or an entity fingerprint")
    .requiredOption(
      '--from <source>',
      '"-" for stdin, an http(s) URL (read as it comes), a file, or a device: a FIFO or character device read at its own pace',
    )
    .option('--name <name>', 'the name the recipient sees (default: the file name, or live.webm)')
    .option('--type <type>', 'audio/* or video/* media type (default: from the name)')
    .action(async (to: string, options: { from: string; name?: string; type?: string }, command: Command) => {
      // The input first: a URL that does not answer fails before the recipient gets a link.
      const source = await openInput(options.from);
      const name = options.name ?? source.name;
      const opened = await nodeCall<{ stream: string; to: string }>(command, 'stream.open', {
        to,
        name,
        type: options.type ?? source.type,
      });
      print(opened.stream);
      let bytes = 0;
      let segments = 0;
      const segmenter = new Segmenter(async (data, final) => {
        await nodeCall(command, 'stream.write', {
          stream: opened.stream,
          data: data.toString('base64'),
          final,
        });
        bytes += data.length;
        segments++;
      });
      for await (const chunk of source.input) await segmenter.push(chunk as Buffer);
      await segmenter.end();
      process.stderr.write(`stream ended: ${bytes} bytes in ${segments} segments\n`);
    });
}

/**
 * What `--from` names: stdin, an http(s) URL whose body is read as it comes (a camera's or an
 * encoder's HTTP output, `ffmpeg -listen 1 http://…`), or a file, FIFO or device. A URL's name is
 * its path's last part; its type the answer's audio/ or video/ Content-Type (the node still
 * checks it, agent/streams/media-type.ts).
 */
async function openInput(from: string): Promise<{ input: Readable; name: string; type?: string }> {
  if (from === '-') return { input: process.stdin, name: 'live.webm' };
  if (!/^https?:\/\//i.test(from)) return { input: await openPath(from), name: basename(from) };
  const refused = (why: string) =>
    new KithError(
      'ERR_STREAM_SOURCE',
      `cannot read ${from}: ${why}`,
      'check the URL and that its server is up',
    );
  const answer = await fetch(from).catch((err: Error) => {
    throw refused((err.cause as Error | undefined)?.message ?? err.message);
  });
  if (!answer.ok || !answer.body) throw refused(`HTTP ${answer.status}`);
  const type = answer.headers.get('content-type')?.split(';')[0]?.trim();
  return {
    input: Readable.fromWeb(answer.body as import('node:stream/web').ReadableStream),
    name: basename(new URL(from).pathname) || 'live.webm',
    ...(type && /^(audio|video)\//.test(type) ? { type } : {}),
  };
}

/**
 * A path: a FIFO or a character device (a *device*, as stat says: docs/protocol.md 8.2) is read as
 * its bytes come, never seeked or sized, until it reports its end; a regular file is read to its
 * end. Anything else is refused before a stream is opened.
 */
async function openPath(path: string): Promise<Readable> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new KithError(
      'ERR_STREAM_SOURCE',
      `cannot read ${path}: ${err.code ?? err.message}`,
      'check the path',
    );
  });
  if (!info.isFIFO() && !info.isCharacterDevice() && !info.isFile())
    throw new KithError(
      'ERR_STREAM_SOURCE',
      `cannot stream ${path}: not a file, a FIFO or a character device`,
      'give a file, a FIFO (mkfifo) an encoder writes into, a device, "-" for stdin, or a URL',
    );
  // No start or end: plain read(2)s at the current position, which is all a device allows.
  return createReadStream(path);
}

// Time to first playable byte: a WebM and a fragmented MP4 sent with `kith send --file` across 3 hops on loopback
// (a → b → c → d, real KithNodes in this process), played from the recipient's link while it
// arrives, against the baseline of waiting for the whole file (the time until it is delivered
// and saved, which is when any player could open it without links).
// Run: node --import tsx bench/streams/run.ts [--seconds 40] [--runs 3] [--formats webm,mp4]
import '../../common/polyfill.ts';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KithNode } from '../../agent/node.ts';
import { silentLogger } from '../../common/logger.ts';
import { startNetwork } from '../../cli/demo/network.ts';
import { line, messagesContaining, progress, send, until } from '../../test/agents/network.ts';
import { makeFragmentedMp4OfSeconds, makeWebmOfSeconds } from './webm.ts';

const run = promisify(execFile);
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const SECONDS = arg('seconds', 40);
const RUNS = arg('runs', 3);
const formatsAt = process.argv.indexOf('--formats');
const FORMATS = (formatsAt >= 0 ? process.argv[formatsAt + 1] : 'webm,mp4').split(',');
const MAKERS: Record<string, { label: string; make: (dir: string, seconds: number) => Promise<string> }> = {
  webm: { label: 'WebM (VP8 + Opus)', make: makeWebmOfSeconds },
  mp4: { label: 'fragmented MP4 (H.264 + AAC)', make: makeFragmentedMp4OfSeconds },
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kith-bench-streams-'));
  const net = await startNetwork({
    dir: join(dir, 'net'),
    topology: line(['a', 'b', 'c', 'd']),
    log: silentLogger(),
    overrides: { delivery: { stallTimeoutMs: 30_000 } },
  });
  try {
    const [a, d] = [net.agent('a').node, net.agent('d').node];
    for (const format of FORMATS) {
      const maker = MAKERS[format];
      if (!maker) throw new Error(`unknown format ${format}: webm or mp4`);
      const file = await maker.make(dir, SECONDS);
      await measure(a, d, file, maker.label);
    }
  } finally {
    await net.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Sends `file` RUNS times a -> d and prints, per run, when its link mail came, when its first second decoded from the link, and when it was delivered. */
async function measure(a: KithNode, d: KithNode, file: string, label: string): Promise<void> {
  const size = statSync(file).size;
  process.stdout.write(`${label} of ${SECONDS} s, ${(size / 1024 / 1024).toFixed(1)} MiB, 3 hops\n`);
  process.stdout.write('run  link mail  first second decoded  delivered+saved  ratio\n');
  const ratios: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const before = (await messagesContaining(d, 'X-Mozilla-Cloud-Part')).length;
    const t0 = Date.now();
    const id = await send(a, d, { file });
    const mails = await until(
      async () => {
        const found = await messagesContaining(d, 'X-Mozilla-Cloud-Part');
        return found.length > before ? found : undefined;
      },
      'link mail',
      60_000,
      20,
    );
    const tMail = Date.now() - t0;
    const url = /X-Mozilla-Cloud-Part: cloudFile; url=(\S+)/.exec(mails.at(-1)!.toString())![1];
    await run('ffmpeg', ['-v', 'error', '-i', url, '-t', '1', '-f', 'null', '-']);
    const tPlay = Date.now() - t0;
    await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered', 300_000, 20);
    const tDone = Date.now() - t0;
    ratios.push(tPlay / tDone);
    process.stdout.write(
      `${r + 1}    ${String(tMail).padStart(6)} ms  ${String(tPlay).padStart(12)} ms  ${String(tDone).padStart(12)} ms  ${(tPlay / tDone).toFixed(3)}\n`,
    );
  }
  ratios.sort((x, y) => x - y);
  process.stdout.write(
    `median ratio first playable / whole file: ${ratios[Math.floor(ratios.length / 2)].toFixed(3)}\n`,
  );
}

void main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  },
);

import { expect } from '@jest/globals';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { promisify } from 'node:util';
import type { KithNode } from '../../agent/node.ts';
import { messagesContaining, progress, until } from '../agents/network.ts';
import { runKithAsync } from '../helpers/cli.ts';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';
import { HANG_MS } from '../helpers/hang.ts';
import type { AgentId, MessageId } from '../../common/ids.ts';
import { decodeOnion, encodeOnion, hopDigest } from '../../agent/delivery/frames.ts';
import { agentKeysFromIdentity, publicFromAgentId, signWith } from '../../agent/onion/keys.ts';
import { FrameType } from '../../agent/onion/wire.ts';

export const run = promisify(execFile);

/**
 * A few seconds of ffmpeg test pattern with a sine tone as WebM (VP8 + Opus). Noise keeps the
 * bitrate up (~3 Mbit/s), so the file spans several 256 KiB chunks.
 */
export async function makeWebm(path: string, seconds = 5): Promise<void> {
  await run('ffmpeg', ['-v', 'error', '-y', ...PATTERN(seconds), '-f', 'webm', path]);
}

/**
 * The same pattern as fragmented MP4 (H.264 + AAC, a keyframe and a fragment every second, the
 * `moov` up front and empty): what a browser's Media Source or a player reads as it arrives.
 */
export async function makeFragmentedMp4(path: string, seconds = 5): Promise<void> {
  const pattern = PATTERN(seconds);
  const video = pattern.indexOf('libvpx');
  await run('ffmpeg', [
    ...['-v', 'error', '-y', ...pattern.slice(0, video - 1)],
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-b:v', '3M', '-minrate', '3M'],
    ...['-maxrate', '3M', '-bufsize', '1M', '-c:a', 'aac'],
    ...['-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-f', 'mp4', path],
  ]);
}

/** ffmpeg arguments of the test pattern: noise keeps the bitrate at ~3 Mbit/s. */
const PATTERN = (seconds: number) => [
  '-f',
  'lavfi',
  '-i',
  'testsrc=size=320x240:rate=25',
  '-f',
  'lavfi',
  '-i',
  'sine=frequency=440:sample_rate=48000',
  '-t',
  String(seconds),
  '-vf',
  'noise=alls=40:allf=t',
  '-c:v',
  'libvpx',
  '-deadline',
  'realtime',
  '-cpu-used',
  '16',
  '-b:v',
  '3M',
  '-minrate',
  '3M',
  '-maxrate',
  '3M',
  '-c:a',
  'libopus',
];

/**
 * The same pattern as a live WebM: written to a pipe, as a camera or an encoder hands it on —
 * clusters one after the other, no index at the end, no duration in the header.
 */
export async function liveWebm(seconds = 5): Promise<Buffer> {
  const { stdout } = await promisify(execFile)(
    'ffmpeg',
    ['-v', 'error', ...PATTERN(seconds), '-f', 'webm', 'pipe:1'],
    { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout;
}

/** ffprobe's view of a URL or file: codec names and duration. */
export async function probe(
  url: string,
  extra: string[] = [],
): Promise<{ codecs: string[]; duration: number }> {
  const { stdout } = await run('ffprobe', [
    '-v',
    'error',
    ...extra,
    '-show_entries',
    'stream=codec_name:format=duration',
    '-of',
    'json',
    url,
  ]);
  const json = JSON.parse(stdout) as { streams: { codec_name: string }[]; format: { duration?: string } };
  return { codecs: json.streams.map((s) => s.codec_name).sort(), duration: Number(json.format.duration) };
}

/** Decodes the first `seconds` of a URL (what a player does when it starts); resolves to frames decoded. */
export async function decodeStart(url: string, seconds = 1, extra: string[] = []): Promise<number> {
  const { stderr } = await run('ffmpeg', [
    '-v',
    'error',
    '-stats_period',
    '60',
    '-progress',
    'pipe:2',
    '-nostats',
    ...extra,
    '-i',
    url,
    '-t',
    String(seconds),
    '-map',
    '0:v:0',
    '-f',
    'null',
    '-',
  ]);
  const frames = [...stderr.matchAll(/^frame=(\d+)$/gm)].at(-1)?.[1];
  return Number(frames ?? 0);
}

export async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The link of a FileLink-style mail (X-Mozilla-Cloud-Part). */
export function linkIn(raw: Buffer): string | undefined {
  return /X-Mozilla-Cloud-Part: cloudFile; url=(\S+)/.exec(raw.toString('utf8'))?.[1];
}

/** Waits for the first mail in `node`'s INBOX containing `needle` (a link mail by default); its link. */
export async function linkMail(node: KithNode, needle = 'X-Mozilla-Cloud-Part'): Promise<string> {
  const [mail] = await until(
    async () => {
      const found = await messagesContaining(node, needle);
      return found.length > 0 ? found : undefined;
    },
    `a mail with ${needle}`,
    HANG_MS,
  );
  return linkIn(mail)!;
}

/** Bytes of the KITH-FILE header line before a sent file's own bytes (agent/files.ts). */
export function fileHeaderLength(name: string, size: number): number {
  return Buffer.byteLength('KITH-FILE/1 ' + JSON.stringify({ name, size }) + '\n');
}

/** A paused link: onion frames from `node` to `to` beyond the first `pass` wait until release(). */
export interface Gate {
  /** Resolves when the first frame is held back. */
  firstHeld: Promise<void>;
  held(): number;
  release(): Promise<void>;
  /** Opens the link and forgets what it held: what a cut link does to frames in flight. */
  drop(): number;
}

/**
 * Pauses the link from a relay to its next hop after `pass` onion frames (the manifest and the
 * first chunks): what a slow or cut link does to a transfer, without timing anything.
 */
export function gateLink(node: KithNode, to: KithNode, pass: number): Gate {
  const transport = node.links.transport;
  const original = transport.send.bind(transport);
  const target: AgentId = to.identity.agentId;
  const queue: Uint8Array[] = [];
  let passed = 0;
  let open = false;
  let heldOne!: () => void;
  const firstHeld = new Promise<void>((resolve) => (heldOne = resolve));
  transport.send = async (peer, frame) => {
    if (peer !== target || open || frame[1] !== FrameType.onion || passed++ < pass)
      return original(peer, frame);
    queue.push(frame);
    heldOne();
  };
  return {
    firstHeld,
    held: () => queue.length,
    release: async () => {
      open = true;
      while (queue.length > 0) await original(target, queue.shift()!);
    },
    drop: () => {
      open = true;
      return queue.splice(0).length;
    },
  };
}

/**
 * Makes a relay flip one byte of the `nth` onion frame (0: the manifest) it hands to `to`,
 * re-signing it so the hop check passes: damage only the end-to-end chunk seal can catch.
 */
export function corruptFrame(node: KithNode, to: KithNode, nth: number): Promise<void> {
  const transport = node.links.transport;
  const original = transport.send.bind(transport);
  const target: AgentId = to.identity.agentId;
  const keys = agentKeysFromIdentity(node.identity);
  let seen = 0;
  let done!: () => void;
  const corrupted = new Promise<void>((resolve) => (done = resolve));
  transport.send = async (peer, frame) => {
    if (peer !== target || frame[1] !== FrameType.onion || seen++ !== nth) return original(peer, frame);
    const { header, body } = decodeOnion(Buffer.from(frame));
    const h = Buffer.from(header);
    const b = Buffer.from(body);
    b[b.length >> 1] ^= 0x5a;
    await original(peer, encodeOnion(h, b, signWith(keys, hopDigest(publicFromAgentId(target), h, b))));
    done();
  };
  return corrupted;
}

/** A link that lets onion frames through up to a count, raised step by step (allow). */
export interface StepGate {
  /** Frames held back now. */
  held(): number;
  /** Frames handed on so far. */
  passed(): number;
  /** Lets frames through until `total` have passed in all (Infinity: opens the link). */
  allow(total: number): Promise<void>;
}

/**
 * Like gateLink, but the count can be raised: the relay hands on its first `pass` onion frames
 * to `to`, holds the rest in order, and allow() lets more through — e.g. all but the last chunk.
 */
export function stepGate(node: KithNode, to: KithNode, pass: number): StepGate {
  const transport = node.links.transport;
  const original = transport.send.bind(transport);
  const target: AgentId = to.identity.agentId;
  const queue: Uint8Array[] = [];
  let limit = pass;
  let passed = 0;
  transport.send = async (peer, frame) => {
    if (peer !== target || frame[1] !== FrameType.onion) return original(peer, frame);
    if (queue.length === 0 && passed < limit) {
      passed++;
      return original(peer, frame);
    }
    queue.push(frame);
  };
  return {
    held: () => queue.length,
    passed: () => passed,
    allow: async (total) => {
      limit = total;
      while (queue.length > 0 && passed < limit) {
        passed++;
        await original(target, queue.shift()!);
      }
    },
  };
}

/**
 * `kith --data-dir … send FP --file PATH`: the real command against the node running here; the
 * message id. `quiet`: it must also print nothing on stderr.
 */
export async function kithSendFile(
  from: KithNode,
  to: KithNode,
  file: string,
  { quiet = false } = {},
): Promise<MessageId> {
  const sent = await runKithAsync([
    '--data-dir',
    from.paths.root,
    'send',
    to.identity.fingerprint,
    '--file',
    file,
  ]);
  if (quiet) expect(sent.stderr).toBe('');
  expect(sent.status).toBe(0);
  return sent.stdout.trim() as MessageId;
}

/** The bound on what may have arrived when a player starts: 2 MiB, in whole chunks. */
export const PLAY_BOUND_CHUNKS = Math.floor((2 * 1024 * 1024) / CHUNK_BYTES);

/** A file on its way from a to b with most of it held back at a's link (sendHeld). */
export interface HeldTransfer {
  id: MessageId;
  /** The link from b's link mail. */
  url: string;
  /** Chunks b stored of it so far. */
  stored(): number;
  /** Still arriving: at most `chunks` stored, frames held at the link, not delivered. */
  stillArriving(): { stored: number; held: number; delivered: boolean };
  /** Lets the rest through and waits until the sender's progress says delivered. */
  finish(): Promise<void>;
}

/**
 * Sends `file` from a to its neighbour b with `kith send --file` (the real CLI) while a's link to
 * b lets only the manifest and `chunks` chunks through (stepGate), and waits for b's link mail:
 * what a player is given while the transfer arrives, bounded by a count of stored chunks, not a clock.
 */
export async function sendHeld(
  a: KithNode,
  b: KithNode,
  file: string,
  chunks = PLAY_BOUND_CHUNKS,
): Promise<HeldTransfer> {
  const before = b.engine.metrics.get('chunks_received') ?? 0;
  const stored = () => (b.engine.metrics.get('chunks_received') ?? 0) - before;
  const gate = stepGate(a, b, 1 + chunks); // the manifest, then `chunks` chunks
  const id = await kithSendFile(a, b, file);
  const url = await linkMail(b, `/${encodeURIComponent(file.split('/').pop()!)}`);
  return {
    id,
    url,
    stored,
    stillArriving: () => ({
      stored: stored(),
      held: gate.held(),
      delivered: progress(a, id).state === 'delivered',
    }),
    finish: async () => {
      await gate.allow(Infinity);
      await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered', HANG_MS);
    },
  };
}

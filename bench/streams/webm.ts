// The benches' media: an ffmpeg test pattern as WebM (looped by remuxing, up to a size or a
// length) or as fragmented MP4.
import { execFile } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The pattern's length: VP8 + Opus at ~3 Mbit/s. */
const PART_SECONDS = 5;

/** A WebM of exactly `bytes` in `dir` (the 5 s pattern looped, the tail cut). */
export async function makeWebm(dir: string, bytes: number): Promise<string> {
  return looped(dir, (part) => Math.ceil(bytes / statSync(part).size), bytes);
}

/** A WebM of about `seconds` in `dir` (the 5 s pattern looped, whole loops: it plays to its end). */
export async function makeWebmOfSeconds(dir: string, seconds: number): Promise<string> {
  return looped(dir, () => Math.max(0, Math.ceil(seconds / PART_SECONDS) - 1));
}

/** dir/movie.webm: the pattern, then `loops(part)` more copies of it, cut to `bytes` if given. */
async function looped(dir: string, loops: (part: string) => number, bytes?: number): Promise<string> {
  const part = join(dir, 'part.webm');
  await run('ffmpeg', [
    ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(PART_SECONDS)],
    ...['-vf', 'noise=alls=40:allf=t', '-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '16'],
    ...['-b:v', '3M', '-minrate', '3M', '-maxrate', '3M', '-c:a', 'libopus', '-f', 'webm', part],
  ]);
  const file = join(dir, 'movie.webm');
  const n = loops(part);
  await run('ffmpeg', ['-v', 'error', '-y', '-stream_loop', String(n), '-i', part, '-c', 'copy', file]);
  if (bytes !== undefined) await run('truncate', ['-s', String(bytes), file]);
  rmSync(part);
  return file;
}

/**
 * dir/movie.mp4: the same pattern as fragmented MP4 (H.264 + AAC at ~3 Mbit/s, a keyframe and a
 * fragment every second, an empty `moov` up front), `seconds` long: what an encoder writing to a
 * pipe or a live packager makes.
 */
export async function makeFragmentedMp4OfSeconds(dir: string, seconds: number): Promise<string> {
  const file = join(dir, 'movie.mp4');
  await run('ffmpeg', [
    ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(seconds)],
    ...['-vf', 'noise=alls=40:allf=t', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25'],
    ...['-b:v', '3M', '-minrate', '3M', '-maxrate', '3M', '-bufsize', '1M', '-c:a', 'aac'],
    ...['-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-f', 'mp4', file],
  ]);
  return file;
}

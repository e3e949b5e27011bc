// The benches' big WebM: an ffmpeg test pattern looped by remuxing up to a size.
import { execFile } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A WebM of exactly `bytes` in `dir` (VP8 + Opus at ~3 Mbit/s; a 5 s pattern looped, the tail cut). */
export async function makeWebm(dir: string, bytes: number): Promise<string> {
  const part = join(dir, 'part.webm');
  await run('ffmpeg', [
    ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '5'],
    ...['-vf', 'noise=alls=40:allf=t', '-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '16'],
    ...['-b:v', '3M', '-minrate', '3M', '-maxrate', '3M', '-c:a', 'libopus', '-f', 'webm', part],
  ]);
  const file = join(dir, 'movie.webm');
  const loops = Math.ceil(bytes / statSync(part).size);
  await run('ffmpeg', ['-v', 'error', '-y', '-stream_loop', String(loops), '-i', part, '-c', 'copy', file]);
  await run('truncate', ['-s', String(bytes), file]);
  rmSync(part);
  return file;
}

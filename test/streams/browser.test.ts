import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import type { KithNode } from '../../agent/node.ts';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';
import { HANG_MS } from '../helpers/hang.ts';
import { line, startAgents, type TestNetwork } from '../agents/network.ts';
import { liveWebm, makeFragmentedMp4, PLAY_BOUND_CHUNKS, sendHeld } from './helpers.ts';

/** Debian's chromium (apt-get install chromium; .ci/run installs it): puppeteer-core downloads none. */
const CHROMIUM = '/usr/bin/chromium';

/** What may have arrived when the video plays: 2 MiB, in whole chunks (the bound). */
const MAX_CHUNKS = PLAY_BOUND_CHUNKS;

/**
 * A browser's <video> plays a file from the recipient's link while the transfer arrives (issue
 * 15): headless Chromium, the link as the element's src. The sender's link lets the manifest and
 * MAX_CHUNKS chunks through and holds the rest (stepGate), so "after at most 2 MiB arrived" is a
 * count of stored chunks, not a clock; the test waits for the element's `playing` event.
 */
describe('a browser video element plays a link while it arrives', () => {
  let net: TestNetwork;
  let a: KithNode, b: KithNode;
  let browser: Browser | undefined;
  let profile: string | undefined;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b']), { delivery: { stallTimeoutMs: 3_600_000 } });
    [a, b] = ['a', 'b'].map((n) => net.agent(n).node);
    profile = await mkdtemp(join(tmpdir(), 'kith-chromium-'));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      // Root in CI: no sandbox. No GPU, no audio device, and autoplay without a gesture.
      args: [
        '--headless=new',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--mute-audio',
        '--no-first-run',
        '--autoplay-policy=no-user-gesture-required',
        // A page Chromium takes for hidden or in the background may defer loading media until it
        // is shown, and suspends players there: headless under load is where that happens.
        '--disable-background-media-suspend',
        '--disable-renderer-backgrounding',
        '--disable-backgrounding-occluded-windows',
        '--disable-background-timer-throttling',
      ],
      headless: true,
      userDataDir: profile,
      // Chromium under load is slow: only the suite's hang bound, never a tighter one.
      timeout: HANG_MS,
      protocolTimeout: HANG_MS,
    });
  });
  afterAll(async () => {
    // The browser always goes, even when close() does not answer: its whole process group.
    const proc = browser?.process();
    await Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 10_000).unref())]).catch(
      () => undefined,
    );
    if (proc?.pid && proc.exitCode === null && proc.signalCode === null) {
      try {
        process.kill(-proc.pid, 'SIGKILL');
      } catch {
        proc.kill('SIGKILL');
      }
    }
    if (profile) await rm(profile, { recursive: true, force: true });
    await net?.close();
  });

  /** Sends `file` a -> b with most of it held back, plays its link in a page, then lets the rest go. */
  async function playsWhileArriving(file: string): Promise<void> {
    const transfer = await sendHeld(a, b, file, MAX_CHUNKS);
    const page = await browser!.newPage();
    try {
      await page.bringToFront();
      await page.setContent('<!doctype html><title>link</title>');
      // Runs in the page (a string: this project's types have no DOM). The element's own events
      // decide: `playing`, or an error with the media error's code.
      const played = page.evaluate(`new Promise((resolve) => {
        const v = document.createElement('video');
        v.muted = true;
        v.autoplay = true;
        v.addEventListener('playing', () => resolve({ currentTime: v.currentTime }), { once: true });
        v.addEventListener('error', () => resolve({ error: 'media error ' + v.error.code + ': ' + v.error.message }));
        v.src = ${JSON.stringify(transfer.url)};
        document.body.append(v);
        // Autoplay, and play() too: a refusal (an autoplay policy) is an answer, not a hang.
        v.play().catch((err) => resolve({ error: 'play() refused: ' + err.name + ': ' + err.message }));
      })`) as Promise<{ currentTime: number } | { error: string }>;
      const result = await played;
      expect(result).not.toHaveProperty('error');
      // Still arriving: no more than 2 MiB stored, the rest held back, the message not delivered.
      const now = transfer.stillArriving();
      expect(now.stored).toBeGreaterThan(0);
      expect(now.stored).toBeLessThanOrEqual(MAX_CHUNKS);
      expect(now.stored * CHUNK_BYTES).toBeLessThanOrEqual(2 * 1024 * 1024);
      expect(now.held).toBeGreaterThan(0);
      expect(now.delivered).toBe(false);
    } finally {
      await page.close().catch(() => undefined);
    }
    await transfer.finish();
  }

  it('plays a WebM: `playing` with at most 2 MiB of the file stored and the rest on its way', async () => {
    // A WebM as an encoder writes it to a pipe (no index at the end to fetch first), 20 s long.
    const file = join(net.dir, 'clip.webm');
    const media = await liveWebm(20);
    await writeFile(file, media);
    expect(media.length).toBeGreaterThan(3 * MAX_CHUNKS * CHUNK_BYTES);
    await playsWhileArriving(file);
  });

  it('plays a fragmented MP4 (H.264 + AAC) the same way', async () => {
    // Seekable, Chromium's demuxer would walk every fragment to the end first: the link opens an
    // MP4 still arriving as a stream (gateway/streams/range.ts answerAsStream).
    const file = join(net.dir, 'clip.mp4');
    await makeFragmentedMp4(file, 20);
    expect((await stat(file)).size).toBeGreaterThan(3 * MAX_CHUNKS * CHUNK_BYTES);
    await playsWhileArriving(file);
  });
});

// Issue 10: `kith demo` with its defaults, python3 smtplib submits alice -> bob a mail with a
// 1 MiB attachment, python3 imaplib reads it from bob's INBOX. No time is asserted: the test waits
// for the mail to be there (the Jest timeout is the only bound) and checks it byte for byte.
import { execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { exited, startKith } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

const ROUNDTRIP = fileURLToPath(new URL('./attachment-roundtrip.py', import.meta.url));

/** Runs the python client to its end; killed if the test ends first. */
function roundtrip(
  settings: string,
  subject: string,
  file: string,
  running: Set<ChildProcess>,
): Promise<{ ok: boolean; copies: number; sha256: string | null; size: number }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'python3',
      [ROUNDTRIP, settings, 'alice', 'bob', subject, file],
      { encoding: 'utf8', maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        running.delete(child);
        if (err) reject(new Error(`${err.message}\n${stdout}\n${stderr}`));
        else
          resolve(JSON.parse(stdout) as { ok: boolean; copies: number; sha256: string | null; size: number });
      },
    );
    running.add(child);
  });
}

describe('kith demo with real mail clients: a 1 MiB attachment', () => {
  const dir = tempDir('kith-e2e-attach-');
  const clients = new Set<ChildProcess>();
  let demo: ChildProcess;
  let settings: string;

  beforeAll(async () => {
    const started = await startKith(['demo', '--json', '--dir', join(dir.path, 'net')], {}, /\n/, 120_000);
    demo = started.child;
    settings = started.stdout().split('\n')[0];
  });

  afterAll(async () => {
    for (const child of clients) child.kill('SIGKILL');
    if (demo && demo.exitCode === null) {
      demo.kill('SIGTERM');
      await exited(demo);
    }
    dir.remove();
  });

  it("alice -> bob over smtplib arrives in bob's INBOX over imaplib, once and intact", async () => {
    const attachment = randomBytes(1024 * 1024);
    const file = join(dir.path, 'attachment.bin');
    writeFileSync(file, attachment);
    const result = await roundtrip(settings, 'one mebibyte', file, clients);
    expect(result).toEqual({
      ok: true,
      copies: 1,
      size: attachment.length,
      sha256: createHash('sha256').update(attachment).digest('hex'),
    });
  });
});

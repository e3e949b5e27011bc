import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { KithError } from '../common/errors.ts';
import { passphraseFromEnvironment } from '../config/load.ts';
import type { Config } from '../config/schema.ts';

/**
 * The passphrase that unlocks the keys: from the configured environment variable or file
 * (services, docker), else asked on the terminal without echo. No terminal and no variable: a
 * clear error, never a hang.
 */
export async function obtainPassphrase(
  config: Config,
  options: { confirm?: boolean; signal?: AbortSignal } = {},
): Promise<string> {
  const fromEnvironment = passphraseFromEnvironment(config);
  if (fromEnvironment) return fromEnvironment;
  if (!process.stdin.isTTY) {
    throw new KithError(
      'ERR_NO_PASSPHRASE',
      'no passphrase: not on a terminal and ' + config.passphrase.env + ' is not set',
      `set ${config.passphrase.env}, or passphrase.file in the configuration`,
    );
  }
  const first = await askHidden('Passphrase for the Kith keys: ', options.signal);
  if (options.confirm) {
    const second = await askHidden('Repeat the passphrase: ', options.signal);
    if (first !== second)
      throw new KithError('ERR_PASSPHRASE_MISMATCH', 'the two passphrases differ', 'try again');
  }
  return first;
}

async function askHidden(prompt: string, signal?: AbortSignal): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk, _encoding, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  process.stderr.write(prompt);
  muted = true;
  try {
    return await new Promise<string>((resolve, reject) => {
      // A stop signal while asking: give up the question (the caller stops what it started).
      const abort = (): void =>
        reject(new KithError('ERR_INTERRUPTED', 'interrupted while asking the passphrase'));
      if (signal?.aborted) return abort();
      signal?.addEventListener('abort', abort, { once: true });
      rl.question('', (answer) => {
        signal?.removeEventListener('abort', abort);
        resolve(answer);
      });
    });
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

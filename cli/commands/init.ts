import { existsSync, rmSync } from 'node:fs';
import { userInfo } from 'node:os';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { KithError } from '../../common/errors.ts';
import { openDatabase } from '../../store/db.ts';
import { dataPaths, prepareDataDir } from '../../store/datadir.ts';
import { configFrom, print } from '../context.ts';
import { obtainPassphrase } from '../passphrase.ts';
import type { Config } from '../../config/schema.ts';
import type { Identity } from '../../agent/identity/identity.ts';

/**
 * Creates the identity in a data directory: shared by `kith init` and `kith start` on first run.
 * Returns the passphrase too, so that `kith start` does not ask for it again. A failure (a bad
 * address, a weak passphrase, …) leaves the data directory as it was.
 */
export async function initialiseNode(
  config: Config,
  who: { name?: string; email?: string },
  options: { signal?: AbortSignal } = {},
): Promise<{ identity: Identity; passphrase: string }> {
  const name = who.name ?? userInfo().username;
  const email = who.email ?? (await askEmail(options.signal));
  const passphrase = await obtainPassphrase(config, { confirm: true, signal: options.signal });
  const undo = undoCreation(config.dataDir);
  try {
    const paths = prepareDataDir(config.dataDir);
    // loaded only when an identity is made: OpenPGP and the certificate maker are heavy
    const [{ createIdentity }, { ensureSelfSignedCertificate }] = await Promise.all([
      import('../../agent/identity/identity.ts'),
      import('../../gateway/tls.ts'),
    ]);
    const db = openDatabase(paths.database);
    let identity: Identity;
    try {
      identity = await createIdentity(db, { name, email, passphrase });
    } finally {
      db.close();
    }
    await ensureSelfSignedCertificate(paths.tls);
    return { identity, passphrase };
  } catch (err) {
    undo();
    throw err;
  }
}

/** Removes what creating an identity adds to the data directory, keeping whatever was there before. */
function undoCreation(root: string): () => void {
  const paths = dataPaths(root);
  const made = [
    paths.database,
    `${paths.database}-wal`,
    `${paths.database}-shm`,
    `${paths.database}-journal`,
    paths.blobs,
    paths.redis,
    paths.tls,
  ].filter((path) => !existsSync(path));
  const rootMade = !existsSync(root);
  return () => {
    if (rootMade) rmSync(root, { recursive: true, force: true });
    else for (const path of made) rmSync(path, { recursive: true, force: true });
  };
}

/** No --email: asked on a terminal; elsewhere a clear error rather than a made-up address. */
async function askEmail(signal?: AbortSignal): Promise<string> {
  if (!process.stdin.isTTY) {
    throw new KithError(
      'ERR_BAD_EMAIL',
      'no e-mail address for the new identity (not on a terminal to ask for one)',
      'give --email you@example.org',
    );
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question('Your e-mail address (carried in your key): ', { signal })).trim();
  } catch (err) {
    if (signal?.aborted) throw interrupted();
    throw err;
  } finally {
    rl.close();
  }
}

/** A signal arrived while asking: the command stops without creating anything. */
export function interrupted(): KithError {
  return new KithError(
    'ERR_INTERRUPTED',
    'interrupted before the identity was created',
    'nothing was changed',
  );
}

export function registerInit(program: Command): void {
  program
    .command('init')
    .description("create this node's entity (OpenPGP key) and its certified agent key")
    .option('--name <name>', "your name, shown in the key's user id")
    .option('--email <address>', "your e-mail address, carried in the key's user id (asked on a terminal)")
    .action(async (options: { name?: string; email?: string }, command: Command) => {
      const config = configFrom(command);
      const { identity } = await initialiseNode(config, options);
      print(`Created ${identity.name} <${identity.email}>`);
      print(`  fingerprint  ${identity.fingerprint}`);
      print(`  agent        ${identity.agentId}`);
      print(`  data dir     ${config.dataDir}`);
      print('Next: `kith start` runs the node; `kith mail-settings` shows how to set up your mail client.');
    });
}

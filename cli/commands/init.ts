import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { createIdentity } from '../../agent/identity/identity.ts';
import { openDatabase } from '../../store/db.ts';
import { prepareDataDir } from '../../store/datadir.ts';
import { ensureSelfSignedCertificate } from '../../gateway/tls.ts';
import { configFrom, print } from '../context.ts';
import { obtainPassphrase } from '../passphrase.ts';
import type { Config } from '../../config/schema.ts';
import type { Identity } from '../../agent/identity/identity.ts';

/** Creates the identity in a data directory: shared by `kith init` and `kith start` on first run. */
export async function initialiseNode(
  config: Config,
  who: { name?: string; email?: string },
  confirm: boolean,
): Promise<Identity> {
  const paths = prepareDataDir(config.dataDir);
  const name = who.name ?? userInfo().username;
  const email = who.email ?? `${userInfo().username}@localhost.kith`;
  const passphrase = await obtainPassphrase(config, { confirm });
  const db = openDatabase(paths.database);
  try {
    const identity = await createIdentity(db, { name, email, passphrase });
    await ensureSelfSignedCertificate(paths.tls);
    return identity;
  } finally {
    db.close();
  }
}

export function registerInit(program: Command): void {
  program
    .command('init')
    .description("create this node's entity (OpenPGP key) and its certified agent key")
    .option('--name <name>', "your name, shown in the key's user id")
    .option('--email <address>', "your e-mail address, carried in the key's user id")
    .action(async (options: { name?: string; email?: string }, command: Command) => {
      const config = configFrom(command);
      const identity = await initialiseNode(config, options, true);
      print(`Created ${identity.name} <${identity.email}>`);
      print(`  fingerprint  ${identity.fingerprint}`);
      print(`  agent        ${identity.agentId}`);
      print(`  data dir     ${config.dataDir}`);
      print('Next: `kith start` runs the node; `kith mail-settings` shows how to set up your mail client.');
    });
}

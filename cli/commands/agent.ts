import { readFileSync, writeFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import type { HistoryProgress } from '../../agent/sync/history.ts';
import { KithError } from '../../common/errors.ts';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase } from '../../store/db.ts';
import { prepareDataDir } from '../../store/datadir.ts';
import { configFrom, print } from '../context.ts';
import { nodeCall } from '../node-call.ts';
import { obtainPassphrase } from '../passphrase.ts';
import { formatLeft, RateMeter } from './progress.ts';

interface AgentView {
  agentId: string;
  self: boolean;
  linked: boolean;
  revoked: boolean;
  notAfter: string;
}

/** `kith agent ...`: several agents (devices) for one entity (docs/operations.md). */
export function registerAgent(program: Command): void {
  const agent = program
    .command('agent')
    .description('the agents (devices) of your entity: add one, import it on the new device, list, revoke');

  agent
    .command('add')
    .description(
      'certify a new agent of this entity and write it to FILE, for `kith agent import` on the new device',
    )
    .requiredOption('--out <file>', 'where to write the new agent (created, never overwritten)')
    .option(
      '--with-entity-key',
      "put the entity's private key in the file too, for a device that is to add and revoke agents itself",
    )
    .action(async (options: { out: string; withEntityKey?: boolean }, command: Command) => {
      // The new agent's keys are sealed under the passphrase (bundle version 2): the node checks it.
      const passphrase = await obtainPassphrase(configFrom(command));
      const added = await nodeCall<{ agentId: string; notAfter: string; bundle: string }>(
        command,
        'agent.add',
        { passphrase, withEntityKey: options.withEntityKey === true },
      );
      try {
        writeFileSync(options.out, added.bundle + '\n', { mode: 0o600, flag: 'wx' });
      } catch (err) {
        throw new KithError(
          'ERR_FILE_EXISTS',
          `cannot write ${options.out}: ${(err as Error).message}`,
          'give a new file name with --out',
        );
      }
      print(`Certified agent ${added.agentId} (valid until ${added.notAfter})`);
      print(`  written to   ${options.out} (locked by your passphrase; delete it after the import)`);
      print(
        `  entity key   ${options.withEntityKey ? 'in the file: the new device keeps it' : 'not in the file: the new device reads, syncs and sends with its own keys'}`,
      );
      print(
        `Next, on the new device: \`kith --data-dir DIR agent import ${options.out}\`, then \`kith start\`.`,
      );
    });

  agent
    .command('import')
    .description(
      'set up this data directory as a new agent of an entity, from the file `kith agent add` wrote',
    )
    .argument('<file>', 'the file written by `kith agent add`')
    .option(
      '--keep-entity-key',
      "for a bundle that carries the entity's private key (one from before r37): keep it on this device too (by default only the agent's own keys: it reads, syncs and sends without it)",
    )
    .action(async (file: string, options: { keepEntityKey?: boolean }, command: Command) => {
      const config = configFrom(command);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new KithError('ERR_FILE_NOT_FOUND', `cannot read ${file}: ${(err as Error).message}`);
      }
      const paths = prepareDataDir(config.dataDir);
      const passphrase = await obtainPassphrase(config);
      const db = openDatabase(paths.database);
      try {
        const [
          { adoptBundleTrust, bundleTrust, importAgentBundle },
          { createTrustStore },
          { ensureSelfSignedCertificate },
        ] = await Promise.all([
          import('../../agent/identity/bundle.ts'),
          import('../../agent/trust/index.ts'),
          import('../../gateway/tls.ts'),
        ]);
        const identity = await importAgentBundle(db, text, passphrase, {
          keepEntityKey: options.keepEntityKey === true,
        });
        const trust = createTrustStore({ db, log: silentLogger() });
        const { contacts } = await adoptBundleTrust(trust, identity, bundleTrust(text), silentLogger());
        await ensureSelfSignedCertificate(paths.tls);
        print(`Imported agent ${identity.agentId} of ${identity.name} <${identity.email}>`);
        print(`  fingerprint  ${identity.fingerprint}`);
        print(`  contacts     ${contacts}`);
        print(`  data dir     ${config.dataDir}`);
        print(
          `  entity key   ${identity.entityKey ? 'kept here (this device can add and revoke agents)' : 'not kept here (add and revoke agents on the device that holds it)'}`,
        );
        print(
          'Next: `kith start`, then `kith agent history` to watch the history arrive from your other agents.',
        );
      } finally {
        db.close();
      }
    });

  agent
    .command('history')
    .description(
      "watch this agent receive the entity's history (changes and messages) from its siblings, until it has all of it",
    )
    .option('--once', 'print where it stands now and exit')
    .action(async (options: { once?: boolean }, command: Command) => {
      if (options.once)
        return print(describeHistory(await nodeCall<HistoryProgress>(command, 'agent.history')));
      await followHistory(command);
    });

  agent
    .command('forget-entity-key')
    .description(
      "remove the entity's private key from this data directory: the device keeps reading, syncing and sending mail with its own agent keys; adding and revoking agents then happen on a device that holds the key",
    )
    .option('--yes', 'do it (without it, only say whether this device holds the key)')
    .action(async (options: { yes?: boolean }, command: Command) => {
      const config = configFrom(command);
      const db = openDatabase(prepareDataDir(config.dataDir).database);
      try {
        const { forgetEntityKey, holdsEntityKey } = await import('../../agent/identity/identity.ts');
        if (!holdsEntityKey(db)) return print('This device does not hold the entity key.');
        if (!options.yes) {
          return print(
            'This device holds the entity key. Make sure another device (or a backup) does too, then run again with --yes; restart the node afterwards.',
          );
        }
        forgetEntityKey(db);
        print('Removed the entity key from this device; restart the node (`kith stop`, `kith start`).');
      } finally {
        db.close();
      }
    });

  agent
    .command('list')
    .description("list your entity's agents: this one, linked, revoked, certificate expiry")
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const agents = await nodeCall<AgentView[]>(command, 'agent.list');
      if (options.json) return print(JSON.stringify(agents));
      for (const a of agents) {
        const state = a.self ? 'this agent' : a.revoked ? 'revoked' : a.linked ? 'linked' : 'not linked';
        print(`${a.agentId}  ${state}  valid until ${a.notAfter}`);
      }
    });

  agent
    .command('revoke')
    .description('revoke one agent of your entity (a lost device): every agent that trusts you refuses it')
    .argument('<peer-id>', 'the agent, as `kith agent list` shows it')
    .action(async (peer: string, _options: unknown, command: Command) => {
      const revoked = await nodeCall<AgentView>(command, 'agent.revoke', { agent: peer });
      print(`Revoked agent ${revoked.agentId}; the revocation travels to your neighbours now`);
    });
}

/** Changes and messages as one count: what the bar fills with. */
function units(p: HistoryProgress): { value: number; total: number } {
  const total = Math.max(p.changes.known, p.changes.held) + p.messages.held + p.messages.missing;
  return { value: p.changes.held + p.messages.held, total };
}

function describeHistory(p: HistoryProgress): string {
  const state = p.done
    ? 'complete'
    : p.siblingsHeard === 0
      ? 'waiting for a sibling (start one, or check `kith agent list`)'
      : 'arriving';
  return (
    `history ${state}: ${p.changes.held}/${Math.max(p.changes.known, p.changes.held)} changes, ` +
    `${p.messages.held}/${p.messages.held + p.messages.missing} messages, from ${p.siblingsHeard} sibling(s)`
  );
}

/**
 * A progress bar on stderr (the same cli-progress bar as `kith track`; on a pipe it prints a
 * line now and then instead of redrawing) until the node says the history is complete.
 */
async function followHistory(command: Command): Promise<void> {
  const meter = new RateMeter();
  const bar = new cliProgress.SingleBar(
    {
      format:
        'history [{bar}] {value}/{total} {percentage}% | {changes} changes, {messages} messages | {left} left',
      stream: process.stderr,
      noTTYOutput: !process.stderr.isTTY,
      notTTYSchedule: 1000,
    },
    cliProgress.Presets.shades_classic,
  );
  const show = (p: HistoryProgress): void => {
    const { value, total } = units(p);
    meter.sample(value, Date.now());
    const payload = {
      changes: `${p.changes.held}/${Math.max(p.changes.known, p.changes.held)}`,
      messages: `${p.messages.held}/${p.messages.held + p.messages.missing}`,
      left: formatLeft(meter.secondsLeft(total)),
    };
    if (!bar.isActive) bar.start(total, value, payload);
    bar.setTotal(total);
    bar.update(value, payload);
  };
  const final = await nodeCall<HistoryProgress>(command, 'agent.history', { follow: true }, (u) =>
    show(u as HistoryProgress),
  );
  show(final);
  bar.stop();
  print(describeHistory(final));
}

import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { describeStoredIdentity } from '../../agent/identity/identity.ts';
import { configFrom, print } from '../context.ts';
import { openExistingDatabase } from '../store.ts';

export function registerId(program: Command): void {
  program
    .command('id')
    .description("print this node's fingerprint, address, agent peer id and certificate validity")
    .option('--json', 'print one line of JSON')
    .action((options: { json?: boolean }, command: Command) => {
      const db = openExistingDatabase(configFrom(command));
      try {
        const id = describeStoredIdentity(db);
        if (options.json) {
          print(
            JSON.stringify({
              fingerprint: id.fingerprint,
              name: id.name,
              email: id.email,
              agentId: id.agentId,
              certificate: { notBefore: id.notBefore, notAfter: id.notAfter },
            }),
          );
          return;
        }
        print(`${id.name} <${id.email}>`);
        print(`  fingerprint  ${id.fingerprint.replace(/(.{4})/g, '$1 ').trim()}`);
        print(`  agent        ${id.agentId}`);
        print(`  certificate  valid ${id.notBefore} to ${id.notAfter}`);
      } finally {
        db.close();
      }
    });

  program
    .command('export-key')
    .description("print the entity's public key (ASCII-armored, GnuPG imports it)")
    .option(
      '--certificate <file>',
      'also write the agent certificate to FILE and its signature to FILE.asc (gpg --verify FILE.asc FILE)',
    )
    .action((options: { certificate?: string }, command: Command) => {
      const db = openExistingDatabase(configFrom(command));
      try {
        const id = describeStoredIdentity(db);
        process.stdout.write(id.publicKey.endsWith('\n') ? id.publicKey : id.publicKey + '\n');
        if (options.certificate) {
          writeFileSync(options.certificate, id.certificate.canonical);
          writeFileSync(options.certificate + '.asc', id.certificate.signature);
        }
      } finally {
        db.close();
      }
    });
}

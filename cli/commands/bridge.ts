import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { KithError } from '../../common/errors.ts';
import { print } from '../context.ts';
import { nodeCall } from '../node-call.ts';

interface BridgeView {
  name: string;
  email: string;
  listAddress: string;
  address: string;
  imap: string;
  smtp: string;
  counts: { in: number; out: number; pending: number; failed: number; dropped: number };
  drops: { messageId?: string; reason: string; at: number }[];
  waiting: { post: string; messageId: string; attempts: number; error?: string; nextAt: number }[];
}

interface AddOptions {
  email: string;
  list: string;
  address: string;
  imap: string;
  imapUser: string;
  imapPassFile: string;
  imapTls: string;
  mailbox: string;
  smtp: string;
  smtpUser?: string;
  smtpPassFile?: string;
  smtpTls: string;
  policy?: string;
}

/** `kith bridge …`: an existing Internet mailing list as a list entity (agent/lists/bridge). */
export function registerBridge(program: Command): void {
  const bridge = program.command('bridge').description('existing Internet mailing lists bridged into Kith');

  bridge
    .command('add')
    .description(
      'make an outside mailing list a list entity: its mail is read over IMAP, members post out via SMTP',
    )
    .argument('<name>', 'the Kith list name (lower-case letters, digits and dashes)')
    .requiredOption('--email <address>', "the list's Kith address, e.g. dev@lists.kith")
    .requiredOption('--list <address>', "the outside list's posting address")
    .requiredOption(
      '--address <address>',
      'the address subscribed to the outside list (posts go out from it)',
    )
    .requiredOption('--imap <host:port>', "the IMAP server of that address's mailbox")
    .requiredOption('--imap-user <user>', 'IMAP user')
    .requiredOption('--imap-pass-file <file>', 'a file holding the IMAP password')
    .option('--imap-tls <mode>', 'tls, starttls or none', 'starttls')
    .option('--mailbox <name>', 'the mailbox the outside list delivers to', 'INBOX')
    .requiredOption('--smtp <host:port>', 'the SMTP relay posts go out through')
    .option('--smtp-user <user>', 'SMTP user, if the relay asks for one')
    .option('--smtp-pass-file <file>', 'a file holding the SMTP password')
    .option('--smtp-tls <mode>', 'tls, starttls or none', 'starttls')
    .option('--policy <policy>', 'who in Kith may post: members, moderated, announce or contacts', 'members')
    .action(async (name: string, o: AddOptions, command: Command) => {
      const imap = hostPort(o.imap, '--imap');
      const smtp = hostPort(o.smtp, '--smtp');
      const added = await nodeCall<BridgeView>(command, 'bridge.add', {
        name,
        email: o.email,
        listAddress: o.list,
        address: o.address,
        imapHost: imap.host,
        imapPort: imap.port,
        imapUser: o.imapUser,
        imapPass: secret(o.imapPassFile),
        imapTls: o.imapTls,
        mailbox: o.mailbox,
        smtpHost: smtp.host,
        smtpPort: smtp.port,
        smtpUser: o.smtpUser,
        smtpPass: o.smtpPassFile === undefined ? undefined : secret(o.smtpPassFile),
        smtpTls: o.smtpTls,
        policy: o.policy,
      });
      print(`${name} <${o.email}> bridges ${o.list}, read as ${o.address}.`);
      print('Add members with `kith list add`; they get the outside posts, and theirs go out.');
      void added;
    });

  bridge
    .command('show')
    .description('what crossed a bridge (or every bridge), and what was dropped, with the reasons')
    .argument('[name]')
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, o: { json?: boolean }, command: Command) => {
      const result = await nodeCall<BridgeView | BridgeView[]>(command, 'bridge.show', { name });
      if (o.json) return print(JSON.stringify(result));
      const views = Array.isArray(result) ? result : [result];
      if (views.length === 0) print('This node bridges no lists (`kith bridge add`).');
      for (const v of views) {
        const c = v.counts;
        print(`${v.name} <${v.email}>  ⇄  ${v.listAddress} (as ${v.address})`);
        print(`  imap ${v.imap}   smtp ${v.smtp}`);
        print(`  in ${c.in}, out ${c.out}, waiting ${c.pending}, failed ${c.failed}, dropped ${c.dropped}`);
        for (const w of v.waiting.slice(0, 10))
          print(
            `  waiting ${w.messageId}: ${w.attempts} attempt(s), ${w.error ?? 'not tried yet'}; next ${new Date(w.nextAt).toISOString()}`,
          );
        for (const d of v.drops.slice(0, 10))
          print(`  dropped ${new Date(d.at).toISOString()} ${d.messageId ?? '(no id)'}: ${d.reason}`);
      }
    });

  bridge
    .command('remove')
    .description(
      'stop bridging an outside list: its settings and passwords are deleted, the Kith list and its members stay',
    )
    .argument('<name>')
    .option('--force', 'also when posts still wait for the relay (they are given up, marked failed)')
    .action(async (name: string, o: { force?: boolean }, command: Command) => {
      const r = await nodeCall<{ failed: number }>(command, 'bridge.remove', {
        name,
        force: o.force === true,
      });
      print(`${name} no longer bridges an outside list; it stays a Kith list with its members.`);
      if (r.failed > 0) print(`${r.failed} post(s) that waited for the relay were given up.`);
    });

  bridge
    .command('retry')
    .description('try the posts waiting for the outside relay now (e.g. once it is back)')
    .argument('<name>')
    .action(async (name: string, _o: unknown, command: Command) => {
      const r = await nodeCall<{ due: number }>(command, 'bridge.retry', { name });
      print(`${r.due} waiting post(s) of ${name} are being tried now; see \`kith bridge show ${name}\`.`);
    });
}

function hostPort(value: string, option: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(value.trim());
  if (!m)
    throw new KithError('ERR_BAD_BRIDGE', `${option}: not host:port: ${value}`, 'e.g. mail.example.org:993');
  return { host: m[1], port: Number(m[2]) };
}

function secret(file: string): string {
  return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

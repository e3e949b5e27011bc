import type { Command } from 'commander';
import type { ContactView } from '../../agent/links/types.ts';
import type { SpamRevocationView } from '../../agent/spam/control.ts';
import { print } from '../context.ts';
import { nodeCall } from '../node-call.ts';

interface EntityView {
  fingerprint: string;
  name: string;
  email: string;
}

export function registerNetwork(program: Command): void {
  program
    .command('invite')
    .description('print a one-time invitation code for someone you want to link with')
    .option('--ttl <minutes>', 'how long the code stays valid', '1440')
    .option('--list <name>', 'an invitation to a list this node hosts: whoever redeems it joins the list')
    .action(async (options: { ttl: string; list?: string }, command: Command) => {
      // --list: an invitation of a hosted list's agent; whoever redeems it becomes a member (agent/lists).
      const { code } = await nodeCall<{ code: string }>(command, options.list ? 'list.invite' : 'invite', {
        ttlMinutes: Number(options.ttl),
        name: options.list,
      });
      print(code);
    });

  program
    .command('accept')
    .description('redeem an invitation code: both sides then trust each other')
    .argument('<code>', 'the code printed by `kith invite` on the other node')
    .action(async (code: string, _options: unknown, command: Command) => {
      const entity = await nodeCall<EntityView>(command, 'accept', { code });
      print(`Now linked with ${entity.name} <${entity.email}>`);
      print(`  fingerprint  ${entity.fingerprint}`);
    });

  program
    .command('trust')
    .description('trust an entity by fingerprint, after checking the fingerprint out of band')
    .argument('<fingerprint>', '40 hex digits')
    .option('--address <multiaddr...>', 'where one of its agents can be reached')
    .action(async (fingerprint: string, options: { address?: string[] }, command: Command) => {
      const result = await nodeCall<
        EntityView & {
          linked?: { agent: string; address: string };
          unreachable: { address: string; error: string }[];
          reinstatedFromSpam?: SpamRevocationView;
        }
      >(command, 'trust', { fingerprint, addresses: options.address ?? [] });
      const who = `${result.fingerprint}${result.email ? ` <${result.email}>` : ''}`;
      const undone = result.reinstatedFromSpam;
      if (undone)
        print(`It had been revoked for spam on ${undone.at} (${undone.detail}); trusted again now.`);
      if (result.linked) {
        print(`Trusted ${who}; linked with its agent at ${result.linked.address}`);
      } else if (result.unreachable.length > 0) {
        print(`Trusted ${who}; not reachable yet, will retry:`);
        for (const u of result.unreachable) print(`  ${u.address}  ${u.error}`);
      } else {
        print(`Trusted ${who}; no address given: linked when one of its agents connects to this node`);
      }
    });

  program
    .command('revoke')
    .description('stop trusting an entity: its links close now and are refused from now on')
    .argument('<fingerprint>', '40 hex digits')
    .action(async (fingerprint: string, _options: unknown, command: Command) => {
      const entity = await nodeCall<EntityView>(command, 'revoke', { fingerprint });
      print(`Revoked ${entity.fingerprint}${entity.email ? ` <${entity.email}>` : ''}`);
    });

  program
    .command('contacts')
    .description('list trusted entities and contacts, their agents, addresses and link state')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const contacts = await nodeCall<(ContactView & { spam?: SpamRevocationView[] })[]>(command, 'contacts');
      if (options.json) return print(JSON.stringify(contacts));
      if (contacts.length === 0) print('No contacts yet: `kith invite` or `kith accept CODE`.');
      for (const c of contacts) {
        const state = c.revoked ? 'revoked' : c.trusted ? 'trusted' : 'contact';
        print(`${c.name} <${c.email}>  ${state}`);
        print(`  fingerprint  ${c.fingerprint}`);
        for (const a of c.agents) {
          print(
            `  agent        ${a.agentId}  ${a.linked ? 'linked' : 'not linked'}${a.revoked ? ' (revoked)' : ''}`,
          );
          for (const addr of a.addresses) print(`               ${addr}`);
        }
        // Why and when spam control revoked it here, or a neighbour reported it (agent/spam).
        for (const s of c.spam ?? []) {
          const by = s.byUs ? 'by this agent' : `by neighbour ${s.by}`;
          print(`  spam         revoked ${by} on ${s.at}: ${s.detail} (${s.verified} signed complaints)`);
        }
      }
    });
}

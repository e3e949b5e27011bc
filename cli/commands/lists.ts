import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { print } from '../context.ts';
import { nodeCall } from '../node-call.ts';

interface ListView {
  name: string;
  email: string;
  policy: string;
  chat: boolean;
  maxBytes: number;
  archive?: string;
  fingerprint: string;
  agentId: string;
  members: number;
  publicKey: string;
}

interface MemberView {
  fingerprint: string;
  email: string;
  name: string;
  moderator: boolean;
}

/** A post of a hosted list with each subscriber's copy (`list.track`, `list.post`). */
export interface PostTrack {
  /** The list's name (`list.post` only). */
  list?: string;
  id: string;
  subject: string;
  decision: string;
  reason?: string;
  receivedAt: number;
  counts: { delivered: number; delayed: number; failed: number; pending: number };
  copies: {
    id: string;
    subscriber: string;
    state: string;
    hops: { hop: number; event: string; at: number; agent?: string }[];
  }[];
}

/** `kith list …`: lists this node hosts (agent/lists), through the running node's control socket. */
export function registerLists(program: Command): void {
  const list = program.command('list').description('mailing lists and chat rooms hosted by this node');

  list
    .command('create')
    .description('create a list entity (its own key and agent) hosted by this node')
    .argument('<name>', 'lower-case letters, digits and dashes')
    .requiredOption('--email <address>', "the list's address, e.g. dev@example.org")
    .option('--policy <policy>', 'members, moderated, announce or contacts', 'members')
    .option('--chat', 'a chat room: short posts, no moderation delay')
    .option('--max-bytes <n>', 'largest post distributed')
    .option('--archive <url>', 'keep copies in the list mailbox and announce this List-Archive URL')
    .action(
      async (
        name: string,
        o: { email: string; policy: string; chat?: boolean; maxBytes?: string; archive?: string },
        command: Command,
      ) => {
        const created = await nodeCall<ListView>(command, 'list.create', {
          name,
          email: o.email,
          policy: o.policy,
          chat: o.chat === true,
          maxBytes: o.maxBytes,
          archive: o.archive,
        });
        printList(created);
        print('Members reach the list at its address once they hold its key (`kith list show --key`).');
      },
    );

  list
    .command('show')
    .description('show one list (or all hosted lists)')
    .argument('[name]')
    .option('--key', "print the list's public key (armored)")
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, o: { key?: boolean; json?: boolean }, command: Command) => {
      const result = await nodeCall<ListView | ListView[]>(command, 'list.show', { name });
      const views = Array.isArray(result) ? result : [result];
      if (o.json) return print(JSON.stringify(result));
      if (o.key) return views.forEach((v) => print(v.publicKey));
      if (views.length === 0) print('This node hosts no lists (`kith list create`).');
      views.forEach(printList);
    });

  list
    .command('add')
    .description('add a member (a contact of this node, by address or fingerprint)')
    .argument('<name>')
    .argument('<who>')
    .option('--moderator', 'as a moderator')
    .option('--key <file>', "the member's armored public key, when this node does not hold it")
    .action(async (name: string, who: string, o: { moderator?: boolean; key?: string }, command: Command) => {
      const added = await nodeCall<{ fingerprint: string; email: string }>(command, 'list.add', {
        name,
        who,
        moderator: o.moderator === true,
        key: o.key === undefined ? undefined : readFileSync(o.key, 'utf8'),
      });
      print(`Added ${added.email} (${added.fingerprint}) to ${name}`);
    });

  list
    .command('remove')
    .description('remove a member: no later post goes to them')
    .argument('<name>')
    .argument('<who>')
    .action(async (name: string, who: string, _o: unknown, command: Command) => {
      const r = await nodeCall<{ fingerprint: string; removed: boolean }>(command, 'list.remove', {
        name,
        who,
      });
      print(
        r.removed ? `Removed ${r.fingerprint} from ${name}` : `${r.fingerprint} was not a member of ${name}`,
      );
    });

  list
    .command('members')
    .description("list a list's members")
    .argument('<name>')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { json?: boolean }, command: Command) => {
      const members = await nodeCall<MemberView[]>(command, 'list.members', { name });
      if (o.json) return print(JSON.stringify(members));
      for (const m of members) print(`${m.fingerprint}  ${m.email}${m.moderator ? '  (moderator)' : ''}`);
    });

  list
    .command('moderators')
    .description("show a list's moderators, or make a member one (--add) or not (--remove)")
    .argument('<name>')
    .option('--add <who>', 'a member who becomes a moderator')
    .option('--remove <who>', 'a moderator who stays a member only')
    .action(async (name: string, o: { add?: string; remove?: string }, command: Command) => {
      const mods = await nodeCall<MemberView[]>(command, 'list.moderators', { name, ...o });
      for (const m of mods) print(`${m.fingerprint}  ${m.email}`);
    });

  list
    .command('policy')
    .description("show or change a list's posting policy and limits")
    .argument('<name>')
    .argument('[policy]', 'members, moderated, announce or contacts')
    .option('--chat', 'make it a chat room')
    .option('--no-chat', 'make it an ordinary list')
    .option('--max-bytes <n>', 'largest post distributed')
    .option('--archive <url>', 'List-Archive URL ("" turns the archive off)')
    .action(
      async (
        name: string,
        policy: string | undefined,
        o: { chat?: boolean; maxBytes?: string; archive?: string },
        command: Command,
      ) => {
        const s = await nodeCall<ListView>(command, 'list.policy', { name, policy, ...o });
        print(
          `${s.name} <${s.email}>: posting ${s.policy}${s.chat ? ', chat room' : ''}, posts up to ${s.maxBytes} bytes${s.archive ? `, archive ${s.archive}` : ''}`,
        );
      },
    );

  list
    .command('track')
    .description("per-subscriber progress of a list's posts (the newest ones, or one post)")
    .argument('<name>')
    .argument('[post]', 'the Kith message id of the post')
    .option('--json', 'print JSON')
    .action(async (name: string, post: string | undefined, o: { json?: boolean }, command: Command) => {
      const posts = await nodeCall<PostTrack[]>(command, 'list.track', { name, post });
      if (o.json) return print(JSON.stringify(posts));
      for (const p of posts) printPostTrack(p, post !== undefined);
    });
}

/** One post: its decision and counts; with `perSubscriber`, a line per subscriber's copy. */
export function printPostTrack(p: PostTrack, perSubscriber: boolean): void {
  const c = p.counts;
  print(
    `${p.id}  ${new Date(p.receivedAt).toISOString()}  "${p.subject}"  ${p.decision}${p.reason ? ` (${p.reason})` : ''}` +
      (p.decision === 'distribute'
        ? `  delivered ${c.delivered}, delayed ${c.delayed}, pending ${c.pending}, failed ${c.failed}`
        : ''),
  );
  if (!perSubscriber) return;
  for (const copy of p.copies) {
    const last = copy.hops.at(-1);
    const where = !last
      ? ''
      : last.event === 'delivered'
        ? `  (into the subscriber's mailbox ${new Date(last.at).toISOString()})`
        : `  (hop ${last.hop} ${last.event}${last.agent ? ` ${last.agent}` : ''} ${new Date(last.at).toISOString()})`;
    print(`  ${copy.subscriber}  ${copy.state}${where}`);
  }
}

function printList(v: ListView): void {
  print(`${v.name} <${v.email}>`);
  print(`  fingerprint  ${v.fingerprint}`);
  print(`  agent        ${v.agentId}`);
  print(`  posting      ${v.policy}${v.chat ? ' (chat room)' : ''}, posts up to ${v.maxBytes} bytes`);
  print(`  members      ${v.members}`);
}

import { KithError } from '../../common/errors.ts';
import { asMessageId } from '../../common/ids.ts';
import type { ControlServer } from '../control/server.ts';
import type { ListHost } from './host.ts';
import { countCopies, isPostingPolicy, POSTING_POLICIES } from './policy.ts';

/** The `list.*` control methods `kith list …` calls (docs/protocol.md, "Control channel"). */
export function registerListMethods(server: ControlServer, lists: ListHost): void {
  server.register('list.create', async (p) => {
    const policy = p.policy === undefined ? undefined : policyOf(p.policy);
    const list = await lists.create({
      name: String(p.name ?? ''),
      email: String(p.email ?? ''),
      policy,
      chat: p.chat === true,
      maxBytes: p.maxBytes === undefined ? undefined : Number(p.maxBytes),
      archive: typeof p.archive === 'string' ? p.archive : undefined,
    });
    return view(lists, list.name);
  });
  server.register('list.show', async (p) =>
    p.name === undefined ? lists.names().map((n) => view(lists, n)) : view(lists, String(p.name)),
  );
  server.register('list.add', async (p) =>
    lists.addMember(String(p.name ?? ''), String(p.who ?? ''), {
      moderator: p.moderator === true,
      key: typeof p.key === 'string' ? p.key : undefined,
    }),
  );
  server.register('list.invite', async (p) => ({
    code: lists.invite(String(p.name ?? ''), Number(p.ttlMinutes ?? 60 * 24) * 60_000),
  }));
  server.register('list.remove', async (p) => lists.removeMember(String(p.name ?? ''), String(p.who ?? '')));
  server.register('list.members', async (p) => lists.get(String(p.name ?? '')).store.members());
  server.register('list.moderators', async (p) => {
    const name = String(p.name ?? '');
    if (typeof p.add === 'string') lists.setModerator(name, p.add, true);
    if (typeof p.remove === 'string') lists.setModerator(name, p.remove, false);
    return lists
      .get(name)
      .store.members()
      .filter((m) => m.moderator);
  });
  server.register('list.policy', async (p) => {
    const name = String(p.name ?? '');
    const change: Parameters<ListHost['updateSettings']>[1] = {};
    if (p.policy !== undefined) change.policy = policyOf(p.policy);
    if (p.chat !== undefined) change.chat = p.chat === true;
    if (p.maxBytes !== undefined) change.maxBytes = positive(p.maxBytes);
    if (p.archive !== undefined) change.archive = p.archive === '' ? undefined : String(p.archive);
    return lists.updateSettings(name, change);
  });
  server.register('list.track', async (p) => {
    const list = lists.get(String(p.name ?? ''));
    const posts =
      p.post === undefined
        ? list.store.recentPosts(Number(p.limit ?? 10))
        : [list.store.post(asMessageId(String(p.post)))];
    return posts.map((post) => {
      if (!post)
        throw new KithError(
          'ERR_UNKNOWN_MESSAGE',
          `no post ${String(p.post)} on this list`,
          'see `kith list track NAME`',
        );
      const copies = list.store.copies(post.id).map((c) => ({
        ...c,
        ...list.node.outbox.progressOf(c.id),
        state: c.state,
      }));
      return { ...post, counts: countCopies(copies.map((c) => c.state)), copies };
    });
  });
}

function policyOf(value: unknown): (typeof POSTING_POLICIES)[number] {
  const text = String(value);
  if (!isPostingPolicy(text)) {
    throw new KithError(
      'ERR_BAD_LIST_POLICY',
      `not a posting policy: ${text}`,
      `use one of ${POSTING_POLICIES.join(', ')}`,
    );
  }
  return text;
}

function positive(value: unknown): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new KithError(
      'ERR_BAD_LIST_SIZE',
      `not a size in bytes: ${String(value)}`,
      'give a positive whole number',
    );
  }
  return n;
}

function view(lists: ListHost, name: string) {
  const list = lists.get(name);
  return {
    ...list.store.settings()!,
    fingerprint: list.node.identity.fingerprint,
    agentId: list.node.identity.agentId,
    members: list.store.members().length,
    publicKey: list.node.identity.entityPublicArmored,
  };
}

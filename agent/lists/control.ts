import { KithError } from '../../common/errors.ts';
import { asMessageId } from '../../common/ids.ts';
import type { ControlServer } from '../control/server.ts';
import type { BridgeSettings, TlsMode } from './bridge/store.ts';
import type { HostedList, ListHost } from './host.ts';
import type { ListPost } from './store.ts';
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
      return postTrack(list, post);
    });
  });
  // `kith track ID` on the host: a post to one of its lists, with every subscriber's copy (or null).
  server.register('list.post', async (p) => {
    const id = asMessageId(String(p.id ?? ''));
    for (const name of lists.names()) {
      const list = lists.get(name);
      const post = list.store.post(id);
      if (post) return { list: name, ...postTrack(list, post) };
    }
    return null;
  });
  registerBridgeMethods(server, lists);
}

/** A post with each subscriber's copy: its state and its hop-by-hop progress in the list's outbox. */
function postTrack(list: HostedList, post: ListPost) {
  const copies = list.store.copies(post.id).map((c) => ({
    ...c,
    ...list.node.outbox.progressOf(c.id),
    state: c.state,
  }));
  return { ...post, counts: countCopies(copies.map((c) => c.state)), copies };
}

/**
 * `bridge.*`: `kith bridge add` makes an outside mailing list a list entity (bridge/bridge.ts);
 * `bridge.show` tells what crossed it, what waits and what was dropped, with the reasons;
 * `bridge.remove` ends a bridge (the list stays); `bridge.retry` tries waiting posts now.
 */
export function registerBridgeMethods(server: ControlServer, lists: ListHost): void {
  server.register('bridge.add', async (p) => {
    const bridge = bridgeSettingsOf(p);
    const list = await lists.create({
      name: String(p.name ?? ''),
      email: String(p.email ?? ''),
      policy: p.policy === undefined ? undefined : policyOf(p.policy),
      maxBytes: p.maxBytes === undefined ? undefined : positive(p.maxBytes),
      bridge,
    });
    return { ...view(lists, list.name), bridge: bridgeView(lists, list.name) };
  });
  server.register('bridge.remove', async (p) => ({
    name: String(p.name),
    ...(await lists.removeBridge(String(p.name ?? ''), { force: p.force === true })),
  }));
  server.register('bridge.retry', async (p) => {
    const list = lists.get(String(p.name ?? ''));
    if (!list.bridge) {
      throw new KithError(
        'ERR_NOT_A_BRIDGE',
        `${String(p.name)} is not a bridged list`,
        'see `kith bridge show`',
      );
    }
    return { name: list.name, due: list.bridge.bridge.retryNow() };
  });
  server.register('bridge.show', async (p) =>
    p.name === undefined
      ? lists
          .names()
          .filter((n) => lists.get(n).bridge)
          .map((n) => bridgeView(lists, n))
      : bridgeView(lists, String(p.name)),
  );
}

function bridgeView(lists: ListHost, name: string) {
  const list = lists.get(name);
  if (!list.bridge) {
    throw new KithError('ERR_NOT_A_BRIDGE', `${name} is not a bridged list`, 'see `kith bridge show`');
  }
  const s = list.bridge.store.settings()!;
  return {
    name,
    email: list.store.settings()!.email,
    listAddress: s.listAddress,
    address: s.address,
    imap: `${s.imap.user}@${s.imap.host}:${s.imap.port}/${s.imap.mailbox} (${s.imap.tls})`,
    smtp: `${s.smtp.host}:${s.smtp.port} (${s.smtp.tls})`,
    counts: list.bridge.store.counts(),
    drops: list.bridge.store.drops(20),
    waiting: list.bridge.store.waiting().map((w) => ({
      post: w.post,
      messageId: w.messageId,
      attempts: w.attempts,
      error: w.error,
      nextAt: w.nextAt,
    })),
  };
}

const TLS_MODES: readonly TlsMode[] = ['tls', 'starttls', 'none'];

/** The bridge's settings from `bridge.add`'s parameters; ERR_BAD_BRIDGE names the first bad one. */
function bridgeSettingsOf(p: Record<string, unknown>): BridgeSettings {
  const bad = (what: string, hint: string): never => {
    throw new KithError('ERR_BAD_BRIDGE', `bridge: ${what}`, hint);
  };
  const address = (key: string): string => {
    const v = typeof p[key] === 'string' ? p[key].trim() : '';
    if (!/^[^\s@<>]+@[^\s@<>]+$/.test(v))
      bad(`not an address for ${key}: ${String(p[key])}`, 'e.g. dev@lists.example.org');
    return v;
  };
  const text = (key: string, fallback?: string): string => {
    const v = typeof p[key] === 'string' && p[key] !== '' ? p[key] : fallback;
    if (v === undefined)
      bad(`${key} is missing`, `give --${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
    return v!;
  };
  const port = (key: string): number => {
    const n = Number(p[key]);
    if (!Number.isInteger(n) || n < 1 || n > 65535)
      bad(`not a port for ${key}: ${String(p[key])}`, '1 to 65535');
    return n;
  };
  const tls = (key: string): TlsMode => {
    const v = String(p[key] ?? 'starttls');
    if (!(TLS_MODES as readonly string[]).includes(v))
      bad(`not a TLS mode for ${key}: ${v}`, TLS_MODES.join(', '));
    return v as TlsMode;
  };
  return {
    listAddress: address('listAddress'),
    address: address('address'),
    imap: {
      host: text('imapHost'),
      port: port('imapPort'),
      tls: tls('imapTls'),
      user: text('imapUser'),
      pass: text('imapPass'),
      mailbox: text('mailbox', 'INBOX'),
    },
    smtp: {
      host: text('smtpHost'),
      port: port('smtpPort'),
      tls: tls('smtpTls'),
      user: typeof p.smtpUser === 'string' && p.smtpUser !== '' ? p.smtpUser : undefined,
      pass: typeof p.smtpPass === 'string' ? p.smtpPass : undefined,
    },
  };
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

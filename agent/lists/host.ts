import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { KithError } from '../../common/errors.ts';
import { asFingerprint, isFingerprint, type Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { Config } from '../../config/schema.ts';
import type { GatewaySink } from '../../gateway/delivery.ts';
import { openDatabase } from '../../store/db.ts';
import { dataPaths, prepareDataDir } from '../../store/datadir.ts';
import { createIdentity, secretBoxOf } from '../identity/identity.ts';
import type { KithNode, NodeOptions } from '../node.ts';
import type { RedisHandle } from '../queue/connection.ts';
import type { TrustStore } from '../trust/store.ts';
import type { PostingPolicy } from './policy.ts';
import { ListBridge } from './bridge/bridge.ts';
import { BridgeStore, type BridgeSettings } from './bridge/store.ts';
import { ListService } from './service.ts';
import { ListStore, type ListSettings } from './store.ts';

/** One list this node hosts, running. */
export interface HostedList {
  name: string;
  node: KithNode;
  store: ListStore;
  service: ListService;
  /** An outside mailing list bridged in (`kith bridge add`). */
  bridge?: { bridge: ListBridge; store: BridgeStore };
}

/** What creating a list takes; everything but name and email has a default. */
export interface ListCreation {
  name: string;
  email: string;
  policy?: PostingPolicy;
  chat?: boolean;
  maxBytes?: number;
  archive?: string;
  summaryAfterMs?: number;
  /** `kith bridge add`: the list is an outside mailing list bridged in. */
  bridge?: BridgeSettings;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Default largest post: 10 MiB for a list, 64 KiB for a chat room (posts are short there). */
export function defaultMaxBytes(chat: boolean): number {
  return chat ? 64 * 1024 : 10 * 1024 * 1024;
}

/**
 * The lists a node hosts (docs/architecture.md, "Lists"). Each list is an entity of its own
 * (OpenPGP key, certified agent, mailbox, credentials) and runs as a KithNode of its own, with
 * its own data directory at <dataDir>/lists/<name>/, started and stopped by the host. The host
 * and each list trust each other (an invitation at creation), so the list is reachable through
 * the host's web of trust. Decision and reasons in docs/architecture.md.
 */
export class ListHost {
  private readonly running = new Map<string, HostedList>();

  constructor(
    private readonly deps: {
      config: Readonly<Config>;
      passphrase: string;
      log: Logger;
      redis: RedisHandle;
      /** Builds a KithNode (a factory, so that this module does not import node.ts at run time). */
      makeNode: (options: NodeOptions) => KithNode;
      /** The host's own parts the lists are linked with and take members' keys from. */
      host: {
        trust: TrustStore;
        createInvitation: () => string;
        multiaddrs: () => string[];
      };
    },
  ) {}

  private get root(): string {
    return join(this.deps.config.dataDir, 'lists');
  }

  /** Starts every list found under <dataDir>/lists. A list that fails to start is logged, the rest go on. */
  async start(): Promise<void> {
    if (!existsSync(this.root)) return;
    for (const name of readdirSync(this.root).sort()) {
      if (!NAME.test(name) || !existsSync(dataPaths(join(this.root, name)).database)) continue;
      try {
        await this.startList(name);
      } catch (err) {
        this.deps.log.warn({ list: name, err: (err as Error).message }, 'a hosted list did not start');
      }
    }
  }

  async stop(): Promise<void> {
    const lists = [...this.running.values()].reverse();
    this.running.clear();
    for (const list of lists) {
      await list.bridge?.bridge.stop();
      await list.service.stop();
      await list.node.stop();
    }
  }

  names(): string[] {
    return [...this.running.keys()].sort();
  }

  /** The running list of that name; ERR_NO_SUCH_LIST otherwise. */
  get(name: string): HostedList {
    const list = this.running.get(name);
    if (!list) {
      throw new KithError(
        'ERR_NO_SUCH_LIST',
        `this node hosts no list named ${name}`,
        'see `kith list show`',
      );
    }
    return list;
  }

  /** `kith list create`: a new entity for the list, its settings, its node, its link with the host. */
  async create(c: ListCreation): Promise<HostedList> {
    if (!NAME.test(c.name)) {
      throw new KithError(
        'ERR_BAD_LIST_NAME',
        `not a list name: ${c.name}`,
        'use lower-case letters, digits and dashes (at most 63)',
      );
    }
    const dir = join(this.root, c.name);
    if (this.running.has(c.name) || existsSync(dataPaths(dir).database)) {
      throw new KithError('ERR_LIST_EXISTS', `a list named ${c.name} exists already`, 'choose another name');
    }
    const paths = prepareDataDir(dir);
    const db = openDatabase(paths.database);
    try {
      await createIdentity(db, { name: c.name, email: c.email, passphrase: this.deps.passphrase });
      const chat = c.chat ?? false;
      const settings: ListSettings = {
        name: c.name,
        email: c.email,
        policy: c.policy ?? 'members',
        chat,
        maxBytes: c.maxBytes ?? defaultMaxBytes(chat),
        archive: c.archive,
        summaryAfterMs: c.summaryAfterMs ?? 10 * 60_000,
      };
      new ListStore(db).saveSettings(settings);
      if (c.bridge)
        new BridgeStore(db, Date.now, secretBoxOf(db, this.deps.passphrase)).saveSettings(c.bridge);
    } finally {
      db.close();
    }
    const list = await this.startList(c.name, { dialHost: false });
    // The host and the list trust each other: the list's way into the host's web of trust.
    await list.node.links.acceptInvitation(this.deps.host.createInvitation());
    this.deps.log.info({ list: c.name, fingerprint: list.node.identity.fingerprint }, 'list created');
    return list;
  }

  /**
   * `kith list add`: a member (or moderator) by fingerprint or contact address, the key taken from
   * the host's contacts, or given armored (`--key FILE`, checked against the fingerprint if one is given).
   */
  async addMember(
    name: string,
    who: string,
    options: { moderator?: boolean; key?: string } = {},
  ): Promise<{ fingerprint: Fingerprint; email: string }> {
    const list = this.get(name);
    const expect = isFingerprint(who.replace(/@kith$/i, ''))
      ? asFingerprint(who.replace(/@kith$/i, ''))
      : undefined;
    // The list must hold the member's key: it encrypts each copy to it and verifies posts with it.
    const entity = await list.node.trust.addEntity(options.key ?? this.findEntity(who).publicKey!, {
      trusted: false,
      contact: true,
      source: 'fingerprint',
      expect,
    });
    const existing = list.store.member(entity.fingerprint);
    list.store.addMember({
      fingerprint: entity.fingerprint,
      email: entity.email,
      name: entity.name,
      moderator: options.moderator === true || (existing?.moderator ?? false),
    });
    return { fingerprint: entity.fingerprint, email: entity.email };
  }

  /** `kith list remove`: no later post goes to this member. */
  removeMember(name: string, who: string): { fingerprint: Fingerprint; removed: boolean } {
    const list = this.get(name);
    const fingerprint = this.memberFingerprint(list, who);
    return { fingerprint, removed: list.store.removeMember(fingerprint) };
  }

  /** Adds or removes the moderator role of a member. */
  setModerator(name: string, who: string, moderator: boolean): { fingerprint: Fingerprint } {
    const list = this.get(name);
    const fingerprint = this.memberFingerprint(list, who);
    const member = list.store.member(fingerprint);
    if (!member) {
      throw new KithError(
        'ERR_NOT_A_MEMBER',
        `${who} is not a member of ${name}`,
        'add them with `kith list add` first',
      );
    }
    list.store.addMember({ ...member, moderator });
    return { fingerprint };
  }

  /**
   * `kith invite --list NAME`: an invitation code of the list's own agent. Redeeming it links the
   * invitee with the list (both trust each other, each the other's contact: the invitee can write
   * to the list's address at once) and makes the invitee a member.
   */
  invite(name: string, ttlMs: number): string {
    return this.get(name).node.links.createInvitation({ ttlMs });
  }

  /**
   * `kith bridge remove`: the bridge stops reading the outside list and sending to it; its
   * settings and sealed passwords are deleted. The list stays, an ordinary Kith list with its
   * members. Posts still waiting for the relay are not dropped silently: refused with
   * ERR_BRIDGE_PENDING unless `force`, then marked failed with the reason.
   */
  async removeBridge(name: string, options: { force?: boolean } = {}): Promise<{ failed: number }> {
    const list = this.get(name);
    if (!list.bridge) {
      throw new KithError('ERR_NOT_A_BRIDGE', `${name} is not a bridged list`, 'see `kith bridge show`');
    }
    const waiting = list.bridge.store.counts().pending;
    if (waiting > 0 && !options.force) {
      throw new KithError(
        'ERR_BRIDGE_PENDING',
        `${waiting} post(s) of ${name} still wait to go out to the outside list`,
        '`kith bridge retry` once the relay is up, or remove with --force to give them up',
      );
    }
    const { bridge, store } = list.bridge;
    list.service.setOutlet(undefined);
    list.bridge = undefined;
    await bridge.stop();
    const failed = store.removeSettings('the bridge was removed (kith bridge remove)');
    this.deps.log.info({ list: name, failed }, 'bridge removed; the list stays a Kith list');
    return { failed };
  }

  /** Changes settings (policy, chat, size limit, archive); unspecified ones stay. */
  updateSettings(name: string, change: Partial<Omit<ListSettings, 'name' | 'email'>>): ListSettings {
    const list = this.get(name);
    const next = { ...list.store.settings()!, ...change };
    list.store.saveSettings(next);
    return next;
  }

  private memberFingerprint(list: HostedList, who: string): Fingerprint {
    const byAddress = list.store.members().find((m) => m.email.toLowerCase() === who.trim().toLowerCase());
    if (byAddress) return byAddress.fingerprint;
    try {
      return asFingerprint(who.replace(/@kith$/i, ''));
    } catch {
      throw new KithError(
        'ERR_NOT_A_MEMBER',
        `${who} is not a member of ${list.name}`,
        'see `kith list members`',
      );
    }
  }

  /** An entity the host knows with its key, by fingerprint or by a contact's address. */
  private findEntity(who: string) {
    const trust = this.deps.host.trust;
    const wanted = who.trim().toLowerCase();
    let entity;
    try {
      entity = trust.entity(asFingerprint(wanted.replace(/@kith$/, '')));
    } catch {
      const matches = trust
        .entities()
        .filter((e) => e.contact && !e.revokedAt && e.email.toLowerCase() === wanted);
      if (matches.length > 1) {
        throw new KithError(
          'ERR_AMBIGUOUS_MEMBER',
          `several contacts have the address ${who}`,
          'give the fingerprint',
        );
      }
      entity = matches[0];
    }
    if (!entity?.publicKey || entity.revokedAt) {
      throw new KithError(
        'ERR_UNKNOWN_MEMBER',
        `this node holds no key for ${who}`,
        'make them a contact of this node first (an invitation), then add them by address or fingerprint',
      );
    }
    return entity;
  }

  /**
   * Starts a list's node. `dialHost` is for a restart: its port is new, so it dials the host,
   * which learns it again. A list just created is not trusted by the host yet: its hello would be
   * refused and the connection closed under the invitation that follows (seen in
   * test/lists/moderation: the list's one link lost, its mail held for good).
   */
  private async startList(name: string, options = { dialHost: true }): Promise<HostedList> {
    const { config, log } = this.deps;
    const dir = join(this.root, name);
    let service: ListService | undefined;
    let store: ListStore | undefined;
    const node = this.deps.makeNode({
      config: listConfig(config, dir, name),
      passphrase: this.deps.passphrase,
      log: log.child({ list: name }),
      redis: this.deps.redis,
      wrapSink: (sink: GatewaySink, n: KithNode) => {
        store = new ListStore(n.db);
        service = new ListService({
          node: n,
          store,
          archive: sink,
          postsDir: join(dir, 'posts'),
          log: log.child({ list: name, part: 'list' }),
        });
        return service.sink();
      },
    });
    await node.start();
    try {
      await service!.start();
    } catch (err) {
      await node.stop();
      throw err;
    }
    const list: HostedList = { name, node, store: store!, service: service! };
    // A subscriber's complaint about a copy ends at the list (its sender): the list carries it on.
    node.engine.onEvent((event) => {
      if (event.kind === 'complained' && event.link) list.service.complained(event.id, event.link);
    });
    // Its passwords are sealed under the passphrase: the box is derived only for a list that bridges.
    const bridgeStore = new BridgeStore(node.db).hasSettings()
      ? new BridgeStore(node.db, Date.now, secretBoxOf(node.db, this.deps.passphrase))
      : undefined;
    const bridgeSettings = bridgeStore?.settings();
    if (bridgeStore && bridgeSettings) {
      const bridge = new ListBridge({
        settings: bridgeSettings,
        store: bridgeStore,
        list: {
          settings: () => list.service.settings(),
          bringIn: (id, raw) => list.service.bringIn(id, raw),
        },
        log: log.child({ list: name, part: 'bridge' }),
      });
      list.service.setOutlet((post, copy, rawPath, poster) => bridge.enqueue(post, copy, rawPath, poster));
      bridge.start();
      list.bridge = { bridge, store: bridgeStore };
    }
    this.running.set(name, list);
    // Whoever redeems one of the list's own invitations (`kith invite --list`) is a member.
    node.links.onInvitationRedeemed((entity) => {
      if (list.store.member(entity.fingerprint)) return;
      list.store.addMember({
        fingerprint: entity.fingerprint,
        email: entity.email,
        name: entity.name,
        moderator: false,
      });
      log.info({ list: name, member: entity.fingerprint }, 'list: joined by invitation');
    });
    for (const address of options.dialHost ? this.deps.host.multiaddrs() : []) {
      await node.links.dial(address).then(
        () => undefined,
        () => undefined,
      );
    }
    return list;
  }
}

/**
 * A hosted list's configuration: the host's, with its own data directory and Redis prefix, and
 * every listener on loopback port 0 (whatever ports the host has configured: they are its own). Subscribers reach the list over Kith, never over its own
 * SMTP/IMAP/HTTP; the list's libp2p listens on loopback only, since its one link is the host.
 */
export function listConfig(host: Readonly<Config>, dataDir: string, name: string): Config {
  return {
    ...host,
    dataDir,
    redis: { ...host.redis, prefix: `${host.redis.prefix}-list-${name}` },
    p2p: {
      ...host.p2p,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      announce: [],
      relay: { ...host.p2p.relay, enabled: false },
      relays: [],
      stunPort: 0,
      upnp: false,
      directory: false,
    },
    smtp: { ...host.smtp, host: '127.0.0.1', port: 0 },
    imap: { ...host.imap, host: '127.0.0.1', port: 0, tlsPort: 0 },
    http: { ...host.http, host: '127.0.0.1', port: 0 },
    // A list plays no transfers to anyone: the host's streams port is the host's alone.
    streams: { ...host.streams, enabled: false, host: '127.0.0.1', port: 0 },
  };
}

import { KithError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import type { Config } from '../config/schema.ts';
import { openDatabase, type Db } from '../store/db.ts';
import { groupCommitOf } from '../store/group-commit.ts';
import { BlobStore } from '../store/blobs.ts';
import { prepareDataDir, type DataPaths } from '../store/datadir.ts';
import { lockDataDir } from '../store/lock.ts';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GatewaySink } from '../gateway/delivery.ts';
import { Gateway, type GatewaySettings } from '../gateway/index.ts';
import { registerControlMethods } from './control/methods.ts';
import { fileNotice, parseFileHeader, readFileHeader, saveReceived } from './files.ts';
import { ControlServer } from './control/server.ts';
import { OutgoingFiles } from './outgoing.ts';
import { DeliveryEngine, type DeliveryEvent, type InboundDelivery } from './delivery/engine.ts';
import { SqliteDeliveryStore } from './delivery/sqlite-store.ts';
import { loadIdentity, type Identity } from './identity/identity.ts';
import { createLinks } from './links/index.ts';
import type { LinkManager } from './links/links.ts';
import { createNat, natExtras } from './nat/index.ts';
import { agentKeysFromIdentity } from './onion/keys.ts';
import { AgentDeliveryService } from './outbound.ts';
import { openpgpCodec, type PayloadCodec } from './payload/codec.ts';
import { agentSignerOf } from './payload/agent-signature.ts';
import { rawX25519, wrapKeysOf } from './payload/wrap.ts';
import { openRedis, type RedisHandle } from './queue/connection.ts';
import { Outbox } from './queue/outbox.ts';
import { TransitQueue } from './queue/transit.ts';
import { registerListMethods } from './lists/control.ts';
import { ListHost } from './lists/host.ts';
import { createReachability, type Reachability } from './reachability/index.ts';
import { registerHistoryMethod, Roaming, splitTransport } from './sync/index.ts';
import type { Transport } from './transport.ts';
import { NeighbourKeeper } from './reachability/keeper.ts';
import { createTrustStore } from './trust/index.ts';
import { TrustStoreView } from './trust/routing-view.ts';
import { Streams } from './streams/index.ts';
import type { TrustStore } from './trust/store.ts';
import { SpamControl } from './spam/control.ts';
import { SpamStore } from './spam/store.ts';
import { SpamLimits } from './spam/limits.ts';
import { FirstContactCredit } from './spam/credit.ts';
import { revokeForSpam, wireSpamToMailbox } from './spam/node.ts';
import { stopWithin } from '../common/timeout.ts';

/** Something with a lifecycle that the node starts in order and stops in reverse. */
interface Part {
  name: string;
  stop(): Promise<void> | void;
}

export interface NodeOptions {
  config: Readonly<Config>;
  passphrase: string;
  log: Logger;
  /** An already running Redis to share (the demo runs one for all its agents). */
  redis?: RedisHandle;
  /**
   * Replaces the gateway sink the node hands incoming mail and delivery events to (a hosted list
   * takes its posts this way, agent/lists). A node started with it hosts no lists of its own.
   */
  wrapSink?: (sink: GatewaySink, node: KithNode) => GatewaySink;
}

/**
 * The one place where a node's parts are wired together: store, identity, Redis, links,
 * delivery and the gateway. Everything else takes its dependencies explicitly.
 */
export class KithNode {
  readonly config: Readonly<Config>;
  private readonly log: Logger;
  private readonly parts: Part[] = [];
  paths!: DataPaths;
  db!: Db;
  blobs!: BlobStore;
  identity!: Identity;
  redis!: RedisHandle;
  trust!: TrustStore;
  links!: LinkManager;
  /** Neighbours' signed addresses (what a restarted node dials). */
  reachability!: Reachability;
  engine!: DeliveryEngine;
  /** What messages are read from while they are sent (outgoing/), removed once they end. */
  private outgoing!: OutgoingFiles;
  /** Spam control: complaints sent, checked, counted and passed on; neighbours judged (agent/spam). */
  spam!: SpamControl;
  /** Spam control's rate limits (agent/spam/limits.ts). */
  spamLimits!: SpamLimits;
  outbox!: Outbox;
  delivery!: AgentDeliveryService;
  control!: ControlServer;
  /** The entity's mailbox shared with its other agents (agent/sync). */
  roaming!: Roaming;
  /** The link transport's sync half (the delivery engine gets the other half). */
  private syncTransport!: Transport;
  /** The lists this node hosts, each an entity with its own node under <dataDir>/lists (agent/lists). */
  lists?: ListHost;
  /** Where incoming mail and status go. */
  private gateway?: GatewaySink;
  /** How mail clients reach this node (SMTP, IMAP, autoconfig, credentials). */
  mailSettings!: GatewaySettings;
  /** Links that play or download transfers while they arrive (agent/streams, gateway/streams). */
  streams!: Streams;

  constructor(private readonly options: NodeOptions) {
    this.config = options.config;
    this.log = options.log;
  }

  async start(): Promise<void> {
    try {
      await this.startParts();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async startParts(): Promise<void> {
    this.paths = prepareDataDir(this.config.dataDir);
    const unlock = lockDataDir(this.paths.root);
    this.parts.push({ name: 'lock', stop: unlock });
    this.db = openDatabase(this.paths.database);
    this.parts.push({
      name: 'database',
      // Writes still waiting for a group commit are committed, not dropped, before the close.
      stop: () => {
        groupCommitOf(this.db).flush();
        this.db.close();
      },
    });
    this.identity = await loadIdentity(this.db, this.options.passphrase);
    this.blobs = new BlobStore(this.paths.blobs);
    await this.blobs.init();
    this.redis =
      this.options.redis ??
      (await openRedis({
        url: this.config.redis.url,
        dir: this.paths.redis,
        binary: this.config.redis.binary,
        log: this.log,
        restart: true,
      }));
    if (!this.options.redis) this.parts.push({ name: 'redis', stop: () => this.redis.stop() });
    await this.startAgent();
    await this.startGateway();
    await this.streams.start();
    this.parts.push({ name: 'streams', stop: () => this.streams.stop() });
    await this.startSync();
    await this.startDelivery();
    if (!this.options.wrapSink) await this.startLists();
    this.log.info({ fingerprint: this.identity.fingerprint, agent: this.identity.agentId }, 'node started');
  }

  /** Trust, links, NAT, reachability, the delivery engine and its outbox, the control socket. */
  private async startAgent(): Promise<void> {
    const { config, log, identity, db } = this;
    this.trust = createTrustStore({ db, log: log.child({ part: 'trust' }) });
    const extras = natExtras(config.p2p);
    this.links = createLinks({
      identity,
      trust: this.trust,
      config: config.p2p,
      log: log.child({ part: 'links' }),
      extras,
    });
    await this.links.start();
    this.parts.push({ name: 'links', stop: () => this.links.stop() });
    const nat = createNat({
      config: config.p2p,
      node: this.links.libp2p,
      isTrusted: (peer) => this.trust.isTrustedAgent(peer as never),
      log: log.child({ part: 'nat' }),
      onLinkChange: (handler) => this.links.transport.onLinkChange(handler),
      ice: extras.ice,
    });
    await nat.start();
    this.parts.push({ name: 'nat', stop: () => nat.stop() });
    const reachability = (this.reachability = createReachability({
      links: this.links,
      trust: this.trust,
      identity,
      db,
      config: config.p2p,
      log: log.child({ part: 'reachability' }),
    }));
    await reachability.start();
    this.parts.push({ name: 'reachability', stop: () => reachability.stop() });
    const keeper = new NeighbourKeeper({
      trusted: () =>
        this.trust
          .entities()
          .filter((e) => e.trusted && !e.revokedAt && e.fingerprint !== identity.fingerprint)
          .map((e) => e.fingerprint),
      linked: (entity) => this.trust.certifiedAgents(entity).some((a) => this.links.isLinked(a.agentId)),
      linkCount: () => this.links.transport.neighbours().length,
      reach: (entity) => reachability.reach(entity),
      log: log.child({ part: 'keeper' }),
    });
    keeper.start();
    this.parts.push({ name: 'keeper', stop: () => keeper.stop() });

    const keys = agentKeysFromIdentity(identity);
    // Spam control's rate limits: first contacts at our door, packets per neighbour, invitations.
    this.spamLimits = new SpamLimits({
      db,
      policy: config.spam,
      logger: log.child({ part: 'spam' }),
      isKnown: (entity) => {
        if (entity === identity.fingerprint) return true;
        const e = this.trust.entity(entity);
        return e !== undefined && e.revokedAt === undefined && (e.trusted || e.contact);
      },
      trafficOf: (agent) => this.spam.trafficOf(agent),
    });
    this.spam = new SpamControl({
      transport: this.links.transport,
      keys,
      store: new SpamStore(db),
      policy: config.spam,
      logger: log.child({ part: 'spam' }),
      entityOf: (agent) => this.trust.entityOfAgent(agent),
      isRevoked: (agent) => this.trust.isRevokedAgent(agent),
      revoke: (act) => void revokeForSpam(act, { links: this.links, transport: this.links.transport, log }),
      hopMemoryMs: config.delivery.hopMemoryMs,
      limits: this.spamLimits,
      // The first-contact credit (docs/protocol.md 15.7), when switched on.
      ...(config.spam.firstContactCredit
        ? {
            credit: new FirstContactCredit(db, config.spam, Date.now),
            isKnown: (entity: Parameters<SpamLimits['knows']>[0]) => this.spamLimits.knows(entity),
          }
        : {}),
    });
    const deliveryStore = new SqliteDeliveryStore(db);
    this.codec = openpgpCodec({
      self: identity.fingerprint,
      // Signed by this agent with its own key and certificate (docs/protocol.md 7.8, since r37);
      // the entity key, where this device holds it, only opens mail sealed to it alone.
      signer: agentSignerOf(identity.agentKey, () => identity.certificate),
      ...(identity.entityKey === undefined ? {} : { entityKey: identity.entityKey }),
      isRevokedAgent: (agent) => this.trust.isRevokedAgent(agent),
      publicKey: (fpr) => this.trust.publicKey(fpr),
      // Encrypt once for every certified agent of the recipient (docs/protocol.md 7.8).
      recipientAgents: (fpr) => wrapKeysOf(this.trust.agentsOf(fpr), Date.now()),
      ownAgent: {
        publicKey: identity.onion.publicKey,
        privateKey: rawX25519(identity.onion.privateKey, 'private'),
      },
    });
    const split = splitTransport(this.links.transport);
    this.syncTransport = split.sync;
    this.engine = new DeliveryEngine({
      transport: split.core,
      keys,
      trust: new TrustStoreView(this.trust, identity),
      store: deliveryStore,
      codec: this.codec,
      sink: {
        receive: (message) => this.receive(message),
        onTransfer: (t) => this.streams?.hooks.onTransfer(t),
        onChunk: (id, index) => this.streams?.hooks.onChunk(id, index),
        onTransferEnded: (id, end) => this.streams?.hooks.onTransferEnded(id, end),
      },
      logger: log.child({ part: 'delivery' }),
      delivery: { ...config.delivery, spoolDir: join(this.paths.root, 'spool') },
      discovery: config.discovery,
      spam: this.spam,
      // A message waiting for a link it needs dials it (links close when idle).
      connect: (agent) => this.links.connect(agent),
      onComplaintThreshold: (neighbour, count) => {
        const entity = this.trust.entityOfAgent(neighbour);
        log.warn({ neighbour, count }, 'complaint threshold reached: revoking trust');
        if (entity) this.links.revoke(entity);
      },
    });
    this.outbox = new Outbox({
      db,
      connection: this.redis.connection,
      prefix: config.redis.prefix,
      log: log.child({ part: 'outbox' }),
      maxAgeMs: config.delivery.maxAgeMs,
      attempt: (entry) => this.delivery.attempt(entry, config.delivery.stallTimeoutMs),
      // The engine fails a message at its deadline when it tries again; this catches one that
      // never got another try (no path for days), so the sender still gets its "failed" email.
      // The row is finished already: the sweep hands its final status over (and retries at start).
      onGiveUp: () => this.reportFinished(),
    });
    this.delivery = new AgentDeliveryService({
      self: identity.fingerprint,
      trust: this.trust,
      engine: this.engine,
      outbox: this.outbox,
      log,
      discoveryTimeoutMs: config.discovery.timeoutMs,
      maxAgeMs: config.delivery.maxAgeMs,
    });
    this.streams = new Streams({
      config: config.streams,
      dataDir: this.paths.root,
      log: log.child({ part: 'streams' }),
      self: identity.email,
      senderOf: (fpr) => {
        const e = this.trust.entity(fpr);
        return { email: e?.email || undefined, name: e?.name, keyKnown: e?.publicKey !== undefined };
      },
      sink: () => this.sink(),
      store: deliveryStore,
    });
    this.engine.onEvent((event) => this.recordEvent(event));
    this.outgoing = new OutgoingFiles(join(this.paths.root, 'outgoing'), log.child({ part: 'outgoing' }));
    // What a message was read from goes once it ended (agent/outgoing.ts).
    this.engine.onEvent((event) => {
      if (event.kind === 'delivered' || event.kind === 'failed') void this.outgoing.finished(event.id);
    });
  }

  /** Timers of final events waiting for another try (recordEvent). */
  private readonly eventRetries = new Set<ReturnType<typeof setTimeout>>();
  private stopping = false;

  /**
   * Records an engine event in the outbox and hands it to the gateway. A final one (delivered,
   * failed) that could not be recorded (disk full, gateway not attached) is tried again with
   * backoff: the engine does not emit it twice, so without this the outbox row would never finish
   * and the sender never get its status email.
   */
  private recordEvent(event: DeliveryEvent, attempt = 0): void {
    void Promise.resolve()
      .then(() => this.delivery.onEngineEvent(event, this.sink()))
      .catch((err: Error) => {
        this.log.warn({ err: err.message, id: event.id, attempt }, 'recording a delivery event failed');
        if (this.stopping || (event.kind !== 'delivered' && event.kind !== 'failed')) return;
        const timer = setTimeout(
          () => {
            this.eventRetries.delete(timer);
            if (!this.stopping) this.recordEvent(event, attempt + 1);
          },
          Math.min(500 * 2 ** attempt, 30_000),
        );
        this.eventRetries.add(timer);
      });
  }

  /** The gateway before delivery starts, so that no incoming message finds it missing. */
  private async startGateway(): Promise<void> {
    const { identity } = this;
    const gateway = new Gateway({
      config: this.config,
      db: this.db,
      blobs: this.blobs,
      submissionBlobs: new BlobStore(join(this.paths.blobs, 'submissions')),
      account: {
        user: identity.email,
        password: identity.mailPassword,
        fingerprint: identity.fingerprint,
        addresses: [identity.email],
      },
      delivery: this.delivery,
      tlsDir: this.paths.tls,
      imapSpoolDir: this.paths.spool,
      linkedDir: join(this.paths.blobs, 'linked'),
      log: this.log.child({ part: 'gateway' }),
    });
    this.parts.push({ name: 'gateway', stop: () => gateway.stop() });
    this.mailSettings = await gateway.start();
    this.mailStore = gateway.store;
    this.gateway = this.options.wrapSink ? this.options.wrapSink(gateway.sink, this) : gateway.sink;
    // Junk moves become complaints; a cut-off is told by status email; `kith trust` reinstates.
    for (const part of wireSpamToMailbox({
      spam: this.spam,
      trust: this.trust,
      mail: gateway.store,
      owner: { email: identity.email, fingerprint: identity.fingerprint },
      log: this.log.child({ part: 'spam' }),
    }))
      this.parts.push(part);
    // Outcomes the engine stored that a crash kept from the outbox, then final statuses lost to a
    // crash (or given before the gateway was there): all go out now.
    for (const event of this.delivery.unrecordedOutcomes()) this.recordEvent(event);
    this.reportFinished();
  }

  /** End-to-end codec of the delivery engine; sync opens siblings' ciphertexts with it too. */
  private codec!: PayloadCodec;

  /** The gateway's mailbox store (what sync keeps in line with the siblings'). */
  private mailStore!: Gateway['store'];

  /** Mailbox sync with the entity's other agents, once the mailbox store runs (agent/sync). */
  private async startSync(): Promise<void> {
    this.roaming = new Roaming({
      db: this.db,
      identity: this.identity,
      trust: this.trust,
      transport: this.syncTransport,
      mail: this.mailStore,
      connect: (agent) => this.links.connect(agent),
      dialHints: () => this.links.dialHints(this.identity.fingerprint),
      log: this.log.child({ part: 'sync' }),
      codec: this.codec,
    });
    await this.roaming.start();
    this.parts.push({ name: 'sync', stop: () => this.roaming.stop() });
  }

  /** Hands the gateway finished messages' final status it has not had (AgentDeliveryService.reportFinished). */
  private reportFinished(): void {
    if (!this.gateway) return;
    void this.delivery
      .reportFinished(this.gateway)
      .catch((err: Error) => this.log.warn({ err: err.message }, 'final status sweep failed'));
  }

  private async startDelivery(): Promise<void> {
    const { log } = this;
    await this.engine.start();
    this.parts.push({ name: 'delivery', stop: () => this.engine.stop() });
    this.spam.start();
    this.parts.push({ name: 'spam', stop: () => this.spam.stop() });
    await this.outbox.start();
    this.parts.push({ name: 'outbox', stop: () => this.outbox.stop() });
    // Packets held for an unreachable next hop: one BullMQ job each, dialling it with backoff.
    const transit = new TransitQueue({
      connection: this.redis.connection,
      prefix: this.config.redis.prefix,
      log: log.child({ part: 'transit' }),
      relay: this.engine,
      dial: (agent) => this.links.connect(agent),
    });
    await transit.start();
    this.parts.push({ name: 'transit', stop: () => transit.stop() });
    this.control = new ControlServer(join(this.paths.root, 'control.sock'), log.child({ part: 'control' }));
    registerControlMethods(this.control, {
      identity: this.identity,
      links: this.links,
      outbox: this.outbox,
      delivery: this.delivery,
      outgoingDir: join(this.paths.root, 'outgoing'),
      settings: () => ({ mail: this.mailSettings }),
      spamRevocations: (entity) => this.spam.revocationsOf(entity),
      invitationQuota: () => this.spamLimits.invitation(this.identity.fingerprint),
      stop: () => this.emitStopRequest(),
    });
    this.streams.registerControl(this.control, {
      self: this.identity.fingerprint,
      outgoingDir: join(this.paths.root, 'outgoing'),
      resolve: (to) => this.delivery.resolveRecipient(to),
      submit: (message) => this.delivery.submit(message),
      metrics: () => this.engine.metrics.snapshot(),
    });
    await mkdir(join(this.paths.root, 'outgoing'), { recursive: true, mode: 0o700 });
    // Before the control socket opens: nothing is being submitted yet.
    await this.outgoing.sweep((id) => this.engine.isPending(id));
    registerHistoryMethod(this.control, this.roaming.engine, () => this.roaming.history());
    await this.control.start();
    this.parts.push({ name: 'control', stop: () => this.control.stop() });
  }

  /** Hosted lists: each its own KithNode under <dataDir>/lists/<name>, sharing this node's Redis. */
  private async startLists(): Promise<void> {
    const lists = (this.lists = new ListHost({
      config: this.config,
      passphrase: this.options.passphrase,
      log: this.log.child({ part: 'lists' }),
      redis: this.redis,
      makeNode: (options) => new KithNode(options),
      host: {
        trust: this.trust,
        createInvitation: () => this.links.createInvitation({ ttlMs: 10 * 60_000 }),
        multiaddrs: () => this.links.multiaddrs().map((a) => a.toString()),
      },
    }));
    this.parts.push({ name: 'lists', stop: () => lists.stop() });
    await lists.start();
    registerListMethods(this.control, lists);
  }

  /** An incoming message, signature checked by the engine, handed to the gateway's mailbox. */
  private async receive(message: InboundDelivery): Promise<void> {
    if (await this.streams.acceptSegment(message)) return;
    if (await this.streams.acceptLinkedMail(message)) return;
    // Kept before the mailbox has it, so a sibling asking for it gets the same ciphertext: queued
    // in the group commit ahead of the append, so committed with it or earlier.
    const kept = message.sealed ? this.roaming?.sealed?.keepSoon(message.id, message.sealed) : undefined;
    // Not kept (a full disk): siblings ask for the plain bytes instead (agent/sync/sealed.ts).
    kept?.catch((err: Error) => this.log.warn({ id: message.id, err: err.message }, 'sealed form not kept'));
    const sender = this.trust.entity(message.sender);
    const from = { fingerprint: message.sender, email: sender?.email, name: sender?.name };
    const file = message.file
      ? await readFileHeader(message.file)
      : message.data && parseFileHeader(message.data);
    let raw: Buffer;
    if (file) {
      const payload = message.file
        ? { path: message.file, offset: file.offset }
        : message.data!.subarray(file.offset);
      const saved = await saveReceived(
        payload,
        file.header.name,
        join(this.paths.root, 'received'),
        message.id,
      );
      await this.streams.completed(message.id, saved);
      raw = fileNotice(from, this.identity.email, file.header, saved, message.id);
    } else {
      raw = message.data ?? (await readFile(message.file!));
    }
    await this.sink().receive({
      id: message.id,
      raw,
      sender: from,
      verified: message.verified,
      senderKeyKnown: sender?.publicKey !== undefined,
      receivedAt: message.receivedAt,
      delivered: message.delivered,
    });
  }

  /** Resolves when someone asked the node to stop over the control channel (`kith stop`). */
  private emitStopRequest: () => void = () => undefined;
  readonly stopRequested = new Promise<void>((resolve) => (this.emitStopRequest = resolve));

  private sink(): GatewaySink {
    if (!this.gateway) {
      throw new KithError('ERR_NO_GATEWAY', 'the gateway is not attached yet; the message stays queued');
    }
    return this.gateway;
  }

  /** Stops every started part in reverse order, each bounded in time; safe to call twice. */
  async stop(timeoutMs = 15_000): Promise<void> {
    this.stopping = true;
    for (const timer of this.eventRetries) clearTimeout(timer);
    this.eventRetries.clear();
    while (this.parts.length > 0) {
      const part = this.parts.pop()!;
      try {
        await stopWithin(Promise.resolve(part.stop()), timeoutMs, part.name);
      } catch (err) {
        this.log.warn({ part: part.name, err: (err as Error).message }, 'stopping a part failed');
      }
    }
  }
}

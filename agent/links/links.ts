import type { Connection, PeerId, Stream } from '@libp2p/interface';
import type { CircuitRelayService } from '@libp2p/circuit-relay-v2';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { Config } from '../../config/schema.ts';
import { KithError } from '../../common/errors.ts';
import { asAgentId, type AgentId, type Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { Identity } from '../identity/identity.ts';
import type { EntityRecord, TrustChange, TrustStore } from '../trust/store.ts';
import { readFrames, readJson, writeJson } from './frames.ts';
import { endsAfterFailedHello, DEFAULT_PROVISIONAL_LIMITS, type ProvisionalEnd } from '../trust/decisions.ts';
import { settleWithin } from '../../common/timeout.ts';
import { dialKeys, parseAddress, targetPeer, withPeer } from './addresses.ts';
import { ownCertificateAtStart, upkeepCertificates } from './certificate-upkeep.ts';
import { contactsView } from './contacts-view.ts';
import { createGater } from './gater.ts';
import { linksToClose } from './link-cap.ts';
import { acceptHello, buildHello, HELLO_PROTOCOL, type HelloMessage, type HelloReply } from './hello.ts';
import { InvitationExchange } from './invitation-exchange.ts';
import { INVITE_PROTOCOL } from './invite.ts';
import { CONTROL_MAX_BYTES, EXCHANGE_TIMEOUT_MS } from './limits.ts';
import { createNode, guardBuiltIns, guardInboundStreams, type KithLibp2p } from './node.ts';
import { ProvisionalPeers } from './provisional-peers.ts';
import { FRAMES_PROTOCOL, LinkTransport } from './transport.ts';
import type { AddressBook, ContactView, Links, LinksOptions, TrustResult } from './types.ts';

/** A provisional peer (unknown until its hello shows a certificate) must prove itself by then. */
const PROVISIONAL_MS = 10_000;

/**
 * The link manager of one agent: owns the libp2p node, admits only trusted agents (gater +
 * hello), runs invitations, and hands the protocol core a Transport over the verified links.
 */
export class LinkManager implements Links {
  private node: KithLibp2p | undefined;
  private linkTransport: LinkTransport | undefined;
  private readonly clock: () => number;
  private readonly expected = new Map<string, number>();
  /** Where dials of an address without a peer id may connect (`ip:port` keys; '*' = anywhere). */
  private readonly addressDials = new Map<string, number>();
  /** Peers let in before their hello proved them: deadlines, limits, per-stream verdicts. */
  private readonly provisional: ProvisionalPeers;
  /** Issuing, redeeming and answering invitations. */
  private readonly invitations: InvitationExchange;
  private unsubscribe: (() => void) | undefined;
  private addressBook: AddressBook | undefined;
  private readonly config: Config['p2p'];
  private readonly identity: Identity;
  /** The trust store this link manager admits by (the control channel reads and changes it too). */
  readonly trustStore: TrustStore;
  private readonly log: Logger;
  private readonly extras: LinksOptions['extras'];
  private idleTimer: ReturnType<typeof setInterval> | undefined;

  constructor(options: LinksOptions) {
    this.config = options.config;
    this.identity = options.identity;
    this.trustStore = options.trust;
    this.log = options.log;
    this.extras = options.extras;
    this.clock = options.clock ?? Date.now;
    this.provisional = new ProvisionalPeers({
      trust: this.trustStore,
      log: this.log,
      deadlineMs: options.provisionalMs ?? PROVISIONAL_MS,
      limits: options.provisionalLimits ?? DEFAULT_PROVISIONAL_LIMITS,
      clock: this.clock,
      connectionsOf: (peer) => this.node?.getConnections(peerIdFromString(peer)) ?? [],
      redemptionOf: (peer) => this.invitations.redemptionOf(peer),
    });
    this.invitations = new InvitationExchange({
      identity: this.identity,
      trust: this.trustStore,
      log: this.log,
      config: this.config,
      node: () => this.libp2p,
      multiaddrs: () => this.multiaddrs(),
      provisional: this.provisional,
      expectOutbound: (peer) => this.expectOutbound(peer),
      promote: (peer) => this.promote(peer),
    });
  }

  get self(): AgentId {
    return this.identity.agentId;
  }

  get transport(): LinkTransport {
    if (this.linkTransport === undefined)
      throw new KithError('ERR_NOT_STARTED', 'the link manager is not started');
    return this.linkTransport;
  }

  /** The running libp2p node, for sibling modules (reachability) that register their own protocols. */
  get libp2p(): KithLibp2p {
    if (this.node === undefined) throw new KithError('ERR_NOT_STARTED', 'the link manager is not started');
    return this.node;
  }

  async start(): Promise<void> {
    if (this.node !== undefined) return;
    // Our own entity is trusted, so every agent it certifies (our other devices) is a neighbour.
    await this.trustStore.addEntity(this.identity.entityPublicArmored, {
      trusted: true,
      contact: true,
      source: 'self',
    });
    await ownCertificateAtStart(this.identity, this.trustStore, this.clock());
    await this.trustStore.addAgentCertificate(this.identity.certificate);
    const gater = createGater(this.trustStore, {
      expectsOutbound: (peer, address) =>
        (this.expected.get(peer) ?? 0) > 0 ||
        this.addressDials.has('*') ||
        (address !== undefined && this.addressDials.has(address)),
      provisionalLoad: (address) => this.provisional.load(address),
      limits: this.provisional.limits,
      onProvisional: (peer, address) => this.provisional.admit(peer, address),
    });
    const node = await createNode({
      privateKey: this.identity.agentKey,
      listen: this.config.listen,
      announce: this.config.announce,
      gater,
      maxConnections: this.config.maxLinks + 16,
      extras: this.extras,
    });
    this.node = node;
    // The one place that decides, per inbound stream, whether its peer may open that protocol:
    // handlers registered later (reachability, NAT) are covered without guarding themselves.
    guardInboundStreams(node, (peer, protocol) => this.provisional.mayOpen(peer, protocol));
    this.linkTransport = new LinkTransport(this.identity.agentId, node, this.log);
    // A stream of a peer `admits` refuses is aborted before its handler runs.
    const onlyIf =
      (
        admits: (from: AgentId) => boolean,
        handler: (stream: Stream, from: AgentId, connection: Connection) => Promise<void>,
      ) =>
      (stream: Stream, connection: Connection) => {
        const from = connection.remotePeer.toString() as AgentId;
        if (!admits(from)) {
          stream.abort(new Error('not a trusted agent'));
          return;
        }
        handler(stream, from, connection).catch((err) => {
          this.log.debug({ err, from }, 'stream handler failed');
          stream.abort(err as Error);
        });
      };
    const trusted = (from: AgentId) => this.trustStore.isTrustedAgent(from);
    const trustedOrProvisional = (from: AgentId) => this.provisional.has(from) || trusted(from);
    const options = { runOnLimitedConnection: true };
    await node.handle(
      FRAMES_PROTOCOL,
      onlyIf(trusted, (s, from) => this.transport.receive(from, s)),
      options,
    );
    await node.handle(
      HELLO_PROTOCOL,
      onlyIf(trustedOrProvisional, (s, from, connection) => this.answerHello(s, from, connection)),
      options,
    );
    await node.handle(
      INVITE_PROTOCOL,
      onlyIf(trustedOrProvisional, (s, from) => this.invitations.answer(s, from)),
      options,
    );
    node.addEventListener('connection:open', (event) => this.onConnectionOpen(event.detail));
    node.addEventListener('peer:disconnect', (event) => this.onPeerDisconnect(event.detail));
    node.addEventListener('connection:close', ({ detail: c }) =>
      this.log.debug(
        { peer: c.remotePeer.toString(), connection: c.id, direction: c.direction },
        'connection closed',
      ),
    );
    this.unsubscribe = this.trustStore.onChange((change) => this.onTrustChange(change));
    await node.start();
    await guardBuiltIns(node, (peer) => this.trustStore.isTrustedAgent(peer as AgentId));
    this.idleTimer = setInterval(
      () => {
        this.closeIdleLinks();
        void this.checkCertificates().catch((err) => this.log.warn({ err }, 'certificate check failed'));
      },
      Math.min(this.config.idleLinkMs, 60_000),
    );
    this.idleTimer.unref();
    await this.checkCertificates();
  }

  async stop(): Promise<void> {
    const node = this.node;
    if (node === undefined) return;
    this.unsubscribe?.();
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.provisional.clear();
    for (const peer of this.linkTransport?.neighbours() ?? []) this.linkTransport?.setLink(peer, false);
    this.node = undefined;
    // A libp2p stop that hangs (a stuck stream close) must not hold the node's stop for good.
    await settleWithin(Promise.resolve(node.stop()), 5_000);
  }

  multiaddrs(): Multiaddr[] {
    return this.node?.getMultiaddrs() ?? [];
  }

  setAddressBook(book: AddressBook): void {
    this.addressBook = book;
  }

  onInvitationRedeemed(listener: (entity: EntityRecord) => void): void {
    this.invitations.onRedeemed(listener);
  }

  /**
   * Called whenever a peer let in provisionally stops being provisional, and why: its hello
   * admitted it ('promoted'), showed it is no certified agent of a trusted entity ('refused'), it
   * never proved itself by the deadline ('deadline'), or it went away first ('disconnected').
   */
  onProvisionalEnd(listener: (peer: AgentId, end: ProvisionalEnd) => void): void {
    this.provisional.onEnd(listener);
  }

  isLinked(agent: AgentId): boolean {
    return this.linkTransport?.isUp(agent) ?? false;
  }

  // ---- dialing ---------------------------------------------------------------------------

  /**
   * Dials an address (with or without /p2p/ID) and runs the hello exchange; resolves with the
   * linked agent. The peer must be trusted (or belong to an entity trusted by fingerprint).
   */
  async dial(address: string | Multiaddr): Promise<AgentId> {
    const node = this.libp2p;
    const target = typeof address === 'string' ? parseAddress(address) : address;
    const peer = targetPeer(target);
    const release = peer === undefined ? await this.expectAddress(target) : this.expectOutbound(peer);
    try {
      const connection = await node.dial(target, { signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS) });
      const remote = asAgentId(connection.remotePeer.toString());
      if (!this.isLinked(remote)) await this.sayHello(connection);
      return remote;
    } catch (err) {
      if (err instanceof KithError) throw err;
      throw new KithError(
        'ERR_DIAL_FAILED',
        `cannot reach ${target.toString()}: ${(err as Error).message}`,
        undefined,
        {
          cause: err,
        },
      );
    } finally {
      release();
    }
  }

  /** Links with a known agent using the addresses the address book has for it. */
  async connect(agent: AgentId): Promise<void> {
    if (this.isLinked(agent)) return;
    // Set-aside addresses last: an agent that was offline, not moved, is still there.
    const addresses = [
      ...(this.addressBook?.addressesOf(agent) ?? []),
      ...(this.addressBook?.setAsideOf?.(agent) ?? []),
    ];
    if (addresses.length === 0) throw new KithError('ERR_NO_ADDRESS', `no known address for agent ${agent}`);
    let lastError: unknown;
    for (const address of addresses) {
      const target = withPeer(parseAddress(address), agent);
      try {
        await this.dial(target);
        this.addressBook?.markWorked(agent, address);
        return;
      } catch (err) {
        lastError = err;
        this.addressBook?.markFailed(agent, address);
      }
    }
    throw lastError instanceof KithError
      ? lastError
      : new KithError('ERR_DIAL_FAILED', `cannot reach agent ${agent}`, undefined, { cause: lastError });
  }

  /**
   * A dial of an address without a peer id: whoever answers there is unknown until its hello, so
   * the gater lets in provisionally an outbound connection to that address (its IP and port,
   * DNS names resolved here) while the dial runs, and no other.
   */
  private async expectAddress(target: Multiaddr): Promise<() => void> {
    const keys = await dialKeys(target);
    for (const key of keys) this.addressDials.set(key, (this.addressDials.get(key) ?? 0) + 1);
    return () => {
      for (const key of keys) {
        const left = (this.addressDials.get(key) ?? 1) - 1;
        if (left <= 0) this.addressDials.delete(key);
        else this.addressDials.set(key, left);
      }
    };
  }

  private expectOutbound(peer: string): () => void {
    this.expected.set(peer, (this.expected.get(peer) ?? 0) + 1);
    return () => {
      const left = (this.expected.get(peer) ?? 1) - 1;
      if (left <= 0) this.expected.delete(peer);
      else this.expected.set(peer, left);
    };
  }

  // ---- invitations (invitation-exchange.ts) ----------------------------------------------

  /** Issues a one-time invitation code valid for ttlMs, naming this agent and its addresses. */
  createInvitation(options: { ttlMs: number }): string {
    return this.invitations.create(options);
  }

  /** Redeems a code: dials the inviter, proves the secret, and both sides now trust each other. */
  acceptInvitation(text: string): Promise<EntityRecord> {
    return this.invitations.accept(text);
  }

  // ---- trust -----------------------------------------------------------------------------

  /**
   * Trusts an entity by fingerprint (checked out of band) and dials the given addresses until one
   * links. The addresses are kept as hints (`dialHints`), so one that does not answer now is
   * tried again later; the result says honestly which answered and which did not.
   */
  async trust(fingerprint: string, options: { addresses?: string[] } = {}): Promise<TrustResult> {
    for (const address of options.addresses ?? []) parseAddress(address);
    const record = this.trustStore.trustFingerprint(fingerprint, options);
    const unreachable: { address: string; error: string }[] = [];
    let linked: { agent: AgentId; address: string } | undefined;
    for (const address of options.addresses ?? []) {
      try {
        const agent = await this.dial(address);
        if (this.trustStore.entityOfAgent(agent) === record.fingerprint) {
          linked = { agent, address };
          break;
        }
        unreachable.push({ address, error: `the agent there, ${agent}, belongs to another entity` });
      } catch (err) {
        this.log.info({ err, address }, 'could not reach a newly trusted entity yet');
        unreachable.push({ address, error: err instanceof KithError ? err.code : (err as Error).message });
      }
    }
    return { entity: this.trustStore.entity(record.fingerprint)!, linked, unreachable };
  }

  /**
   * Dials the addresses given with `kith trust --address` for an entity, until one links with an
   * agent of that entity: the way back to an entity that was offline when it was trusted and of
   * which nothing better (a cached address record) is known. Resolves with that agent.
   */
  async dialHints(entity: Fingerprint): Promise<AgentId | undefined> {
    for (const address of this.trustStore.addressHints(entity)) {
      try {
        const agent = await this.dial(address);
        if (this.trustStore.entityOfAgent(agent) === entity) return agent;
      } catch (err) {
        this.log.debug({ err, entity, address }, 'an address hint did not answer');
      }
    }
    return undefined;
  }

  /** Revokes an entity: its links close at once (the trust change listener) and it is refused from now on. */
  revoke(fingerprint: string): EntityRecord {
    return this.trustStore.revoke(fingerprint);
  }

  /** Trusted entities and contacts, their agents, last known addresses and link state. */
  contacts(): ContactView[] {
    return contactsView(this.trustStore, (agent) => this.isLinked(agent), this.addressBook);
  }

  private onTrustChange(change: TrustChange): void {
    const drop = (agents: AgentId[]) => {
      for (const agent of agents) {
        this.linkTransport?.setLink(agent, false);
        void this.node?.hangUp(peerIdFromString(agent)).catch(() => undefined);
      }
    };
    if (change.kind === 'entity-revoked') drop(change.agents);
    else if (change.kind === 'agent-revoked') {
      drop([change.agent]);
      // Any entity's: a neighbour that trusts it may never meet its agents (and only a newly
      // learned revocation fires this, so the push stops where everyone knows it).
      void this.pushHello();
    } else if (change.kind === 'agent-added' && change.fingerprint === this.identity.fingerprint) {
      void this.pushHello();
    }
  }

  /** Sends a fresh hello to every neighbour: our entity's agents, or the revocations we hold, changed. */
  async pushHello(): Promise<void> {
    const node = this.node;
    if (node === undefined) return;
    await Promise.allSettled(
      this.transport.neighbours().map(async (peer) => {
        const connection = node.getConnections(peerIdFromString(peer)).find((c) => c.status === 'open');
        if (connection) await this.sayHello(connection);
      }),
    );
  }

  // ---- hello and link state --------------------------------------------------------------

  private onConnectionOpen(connection: Connection): void {
    const remote = connection.remotePeer.toString();
    if (connection.direction !== 'outbound' || this.invitations.isDialling(remote)) return;
    this.sayHello(connection).catch((err) => {
      this.log.info({ err, remote }, 'hello failed; closing the connection');
      void connection.close().catch(() => undefined);
    });
  }

  private async sayHello(connection: Connection): Promise<EntityRecord> {
    const remote = asAgentId(connection.remotePeer.toString());
    try {
      const stream = await connection.newStream(HELLO_PROTOCOL, {
        signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS),
        runOnLimitedConnection: true,
      });
      await writeJson(stream, buildHello(this.identity, this.trustStore));
      const reply = await readJson<HelloReply>(readFrames(stream, CONTROL_MAX_BYTES));
      await stream.close().catch(() => undefined);
      if ('refused' in reply)
        throw new KithError('ERR_NOT_TRUSTED', `${remote} refused our hello: ${reply.refused}`);
      const entity = await acceptHello(this.trustStore, remote, reply, this.log);
      this.promote(remote);
      return entity;
    } catch (err) {
      // A peer we dialed provisionally (an address without a peer id) whose reply did not
      // admit it: cut it off now, not at the deadline.
      if (
        this.provisional.has(remote) &&
        endsAfterFailedHello({ trustedNow: this.trustStore.isTrustedAgent(remote) })
      )
        this.provisional.drop(remote, 'refused', connection);
      throw err;
    }
  }

  /**
   * The responder's side of the hello. A peer whose hello does not admit it (a stranger's
   * certificate, a malformed hello, a stream that ends without one) is told so in one line and
   * cut off at once: the hello is all a provisional peer may do (agent/trust/decisions.ts,
   * `endsAfterFailedHello`), so it does not keep its connection until the deadline.
   */
  private async answerHello(stream: Stream, from: AgentId, connection: Connection): Promise<void> {
    try {
      const hello = await readJson<HelloMessage>(readFrames(stream, CONTROL_MAX_BYTES));
      await acceptHello(this.trustStore, from, hello, this.log);
    } catch (err) {
      const code = err instanceof KithError ? err.code : 'ERR_NOT_TRUSTED';
      // Decided before answering: from here on the peer may open nothing, and its going away
      // once it has read the answer is not mistaken for the reason it ended.
      const ends = endsAfterFailedHello({ trustedNow: this.trustStore.isTrustedAgent(from) });
      if (ends) this.provisional.end(from, 'refused');
      // Say nothing about ourselves to a peer we do not trust.
      await writeJson(stream, { v: 1, refused: code }).catch(() => undefined);
      await stream.close().catch(() => undefined);
      if (ends) {
        this.log.info({ peer: from, code }, 'refused a hello; closing the connection');
        this.provisional.drop(from, 'refused', connection);
      }
      throw err;
    }
    await writeJson(stream, buildHello(this.identity, this.trustStore));
    await stream.close().catch(() => undefined);
    this.promote(from);
  }

  private promote(peer: string): void {
    this.provisional.end(peer, 'promoted');
    if (!this.trustStore.isTrustedAgent(peer as AgentId)) return;
    this.linkTransport?.setLink(peer as AgentId, true);
    const excess = linksToClose(
      this.transport.lastActivity,
      this.config.maxLinks,
      (p) => p === peer || this.isRelayPeer(p),
    );
    for (const victim of excess) {
      this.log.debug({ peer: victim }, 'closing the least recently used link (link cap)');
      this.linkTransport?.setLink(victim as AgentId, false);
      void this.node?.hangUp(peerIdFromString(victim)).catch(() => undefined);
    }
  }

  private onPeerDisconnect(peer: PeerId): void {
    const id = peer.toString();
    this.provisional.end(id, 'disconnected');
    this.linkTransport?.setLink(id as AgentId, false);
  }

  /**
   * Runs at start and every minute: closes links whose certificate ran out mid-link and renews
   * certificates that are due (certificate-upkeep.ts).
   */
  async checkCertificates(): Promise<void> {
    await upkeepCertificates({
      identity: this.identity,
      trustStore: this.trustStore,
      neighbours: this.linkTransport?.neighbours() ?? [],
      close: (peer) => {
        this.linkTransport?.setLink(peer, false);
        void this.node?.hangUp(peerIdFromString(peer)).catch(() => undefined);
      },
      pushHello: () => this.pushHello(),
      now: this.clock(),
      log: this.log,
    });
  }

  /** Closes links without traffic for idleLinkMs (relay links excepted: see config.p2p.relays). */
  private closeIdleLinks(): void {
    const node = this.node;
    if (node === undefined) return;
    const now = Date.now();
    for (const [peer, last] of this.transport.lastActivity) {
      if (now - last < this.config.idleLinkMs || this.isRelayPeer(peer)) continue;
      this.log.debug({ peer }, 'closing an idle link');
      void node.hangUp(peerIdFromString(peer)).catch(() => undefined);
    }
  }

  /**
   * A link a NATed agent depends on: a relay we reserve with (config.p2p.relays), or, when we
   * run the relay server, a peer holding a reservation with us (closing it would cut the peer
   * off until its supervisor reserves again).
   */
  private isRelayPeer(peer: string): boolean {
    if (this.config.relays.some((r) => r.includes(peer))) return true;
    const server = (this.node?.services as { relay?: CircuitRelayService } | undefined)?.relay;
    return server?.reservations.has(peerIdFromString(peer)) ?? false;
  }

  /** Entity fingerprint of a linked agent (for the control channel and logs). */
  entityOf(agent: AgentId): Fingerprint | undefined {
    return this.trustStore.entityOfAgent(agent);
  }
}

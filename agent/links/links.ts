import { lookup } from 'node:dns/promises';
import type { Connection, PeerId, Stream } from '@libp2p/interface';
import type { CircuitRelayService } from '@libp2p/circuit-relay-v2';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { Config } from '../../config/schema.ts';
import { KithError } from '../../common/errors.ts';
import { asAgentId, type AgentId, type Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { Identity } from '../identity/identity.ts';
import { decodeInvitation, encodeInvitation } from '../trust/invitation-code.ts';
import type { EntityRecord, TrustChange, TrustStore } from '../trust/store.ts';
import { readFrames, readJson, writeJson } from './frames.ts';
import {
  certificateRenewalDue,
  endsAfterFailedHello,
  provisionalMayOpen,
  DEFAULT_PROVISIONAL_LIMITS,
  type ProvisionalEnd,
  type ProvisionalLimits,
} from '../trust/decisions.ts';
import { renewAgentCertificate } from '../identity/identity.ts';
import { createGater } from './gater.ts';
import { acceptHello, buildHello, HELLO_PROTOCOL, type HelloMessage, type HelloReply } from './hello.ts';
import {
  acceptInviterReply,
  INVITE_PROTOCOL,
  redeemInvitation,
  type InviteReply,
  type InviteRequest,
} from './invite.ts';
import { createNode, guardBuiltIns, guardInboundStreams, type KithLibp2p } from './node.ts';
import { FRAMES_PROTOCOL, LinkTransport } from './transport.ts';
import type { AddressBook, ContactView, Links, LinksOptions, TrustResult } from './types.ts';

/** Small control messages (hello, invitation) never need more. */
const CONTROL_MAX_BYTES = 256 * 1024;
/** A provisional peer (unknown until its hello shows a certificate) must prove itself by then. */
const PROVISIONAL_MS = 10_000;
const EXCHANGE_TIMEOUT_MS = 15_000;
/** Invitation codes carry at most this many addresses (announced ones first). */
const MAX_CODE_ADDRESSES = 6;

/**
 * The link manager of one agent: owns the libp2p node, admits only trusted agents (gater +
 * hello), runs invitations, and hands the protocol core a Transport over the verified links.
 */
export class LinkManager implements Links {
  private node: KithLibp2p | undefined;
  private linkTransport: LinkTransport | undefined;
  private readonly provisional = new Map<string, ReturnType<typeof setTimeout>>();
  /** When unknown peers were let in, by IP address (the per-address limit). */
  private readonly provisionalAdmissions = new Map<string, number[]>();
  private readonly provisionalMs: number;
  private readonly provisionalLimits: ProvisionalLimits;
  private readonly clock: () => number;
  private readonly expected = new Map<string, number>();
  /** Where dials of an address without a peer id may connect (`ip:port` keys; '*' = anywhere). */
  private readonly addressDials = new Map<string, number>();
  /**
   * Inviters whose invitation this agent is redeeming now, and whether their provisional deadline
   * passed meanwhile: the redemption decides when it is over, as `redeeming` does for the inviter.
   */
  private readonly inviteDials = new Map<string, { deadlinePassed: boolean }>();
  /** Settles when a provisional peer is decided (see `mayOpen`). */
  private readonly decided = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  /**
   * Provisional peers whose invitation request this agent is checking now, and whether their
   * deadline passed meanwhile. The deadline bounds how long a stranger may take to speak, not
   * how long we take to answer (OpenPGP checks that took over 10 s on a loaded machine cut
   * invitations off mid-answer: "the inviter refused the connection: stream reset").
   */
  private readonly redeeming = new Map<string, { deadlinePassed: boolean }>();
  private unsubscribe: (() => void) | undefined;
  private addressBook: AddressBook | undefined;
  private readonly redeemedListeners: ((entity: EntityRecord) => void)[] = [];
  private readonly provisionalEndListeners: ((peer: AgentId, end: ProvisionalEnd) => void)[] = [];
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
    this.provisionalMs = options.provisionalMs ?? PROVISIONAL_MS;
    this.provisionalLimits = options.provisionalLimits ?? DEFAULT_PROVISIONAL_LIMITS;
    this.clock = options.clock ?? Date.now;
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
    // The trust store keeps the newest certificate of every agent, ours included: a renewal made
    // before a restart survives there (the identity's own row keeps the first one).
    const stored = this.trustStore.agent(this.identity.agentId);
    if (stored !== undefined && stored.notAfter > Date.parse(this.identity.certificate.body.notAfter)) {
      this.identity.certificate = { body: JSON.parse(stored.certificate.canonical), ...stored.certificate };
    }
    // A node that was off past its certificate's end renews before anything checks it.
    if (certificateRenewalDue(Date.parse(this.identity.certificate.body.notAfter), this.clock())) {
      this.identity.certificate = await renewAgentCertificate(this.identity, new Date(this.clock()));
    }
    await this.trustStore.addAgentCertificate(this.identity.certificate);
    const gater = createGater(this.trustStore, {
      expectsOutbound: (peer, address) =>
        (this.expected.get(peer) ?? 0) > 0 ||
        this.addressDials.has('*') ||
        (address !== undefined && this.addressDials.has(address)),
      provisionalLoad: (address) => this.provisionalLoad(address),
      limits: this.provisionalLimits,
      onProvisional: (peer, address) => this.markProvisional(peer, address),
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
    guardInboundStreams(node, (peer, protocol) => this.mayOpen(peer, protocol));
    this.linkTransport = new LinkTransport(this.identity.agentId, node, this.log);
    const trustedOnly =
      (handler: (stream: Stream, from: AgentId, connection: Connection) => Promise<void>) =>
      (stream: Stream, connection: Connection) => {
        const from = connection.remotePeer.toString();
        if (!this.trustStore.isTrustedAgent(from as AgentId)) {
          stream.abort(new Error('not a trusted agent'));
          return;
        }
        handler(stream, from as AgentId, connection).catch((err) => {
          this.log.debug({ err, from }, 'stream handler failed');
          stream.abort(err as Error);
        });
      };
    const trustedOrProvisional =
      (handler: (stream: Stream, from: AgentId, connection: Connection) => Promise<void>) =>
      (stream: Stream, connection: Connection) => {
        const from = connection.remotePeer.toString();
        if (!this.provisional.has(from) && !this.trustStore.isTrustedAgent(from as AgentId)) {
          stream.abort(new Error('not a trusted agent'));
          return;
        }
        handler(stream, from as AgentId, connection).catch((err) => {
          this.log.debug({ err, from }, 'stream handler failed');
          stream.abort(err as Error);
        });
      };
    const options = { runOnLimitedConnection: true };
    await node.handle(
      FRAMES_PROTOCOL,
      trustedOnly((s, from) => this.transport.receive(from, s)),
      options,
    );
    await node.handle(
      HELLO_PROTOCOL,
      trustedOrProvisional((s, from, connection) => this.answerHello(s, from, connection)),
      options,
    );
    await node.handle(
      INVITE_PROTOCOL,
      trustedOrProvisional((s, from) => this.answerInvite(s, from)),
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
    for (const timer of this.provisional.values()) clearTimeout(timer);
    this.provisional.clear();
    for (const { resolve } of this.decided.values()) resolve();
    this.decided.clear();
    this.provisionalAdmissions.clear();
    for (const peer of this.linkTransport?.neighbours() ?? []) this.linkTransport?.setLink(peer, false);
    this.node = undefined;
    await withTimeout(Promise.resolve(node.stop()), 5_000);
  }

  multiaddrs(): Multiaddr[] {
    return this.node?.getMultiaddrs() ?? [];
  }

  setAddressBook(book: AddressBook): void {
    this.addressBook = book;
  }

  onInvitationRedeemed(listener: (entity: EntityRecord) => void): void {
    this.redeemedListeners.push(listener);
  }

  /**
   * Called whenever a peer let in provisionally stops being provisional, and why: its hello
   * admitted it ('promoted'), showed it is no certified agent of a trusted entity ('refused'), it
   * never proved itself by the deadline ('deadline'), or it went away first ('disconnected').
   */
  onProvisionalEnd(listener: (peer: AgentId, end: ProvisionalEnd) => void): void {
    this.provisionalEndListeners.push(listener);
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

  // ---- invitations -----------------------------------------------------------------------

  /** Issues a one-time invitation code valid for ttlMs, naming this agent and its addresses. */
  createInvitation(options: { ttlMs: number }): string {
    const { secret } = this.trustStore.issueInvitation(options.ttlMs);
    const announced = this.config.announce.map((a) => multiaddr(a));
    const addresses = [...announced, ...this.multiaddrs()].map(withoutPeer);
    const unique = [...new Map(addresses.map((a) => [a.toString(), a])).values()].slice(
      0,
      MAX_CODE_ADDRESSES,
    );
    return encodeInvitation({
      entity: this.identity.fingerprint,
      agent: this.identity.agentId,
      addresses: unique,
      secret,
    });
  }

  /** Redeems a code: dials the inviter, proves the secret, and both sides now trust each other. */
  async acceptInvitation(text: string): Promise<EntityRecord> {
    const code = decodeInvitation(text);
    if (code.entity === this.identity.fingerprint) {
      throw new KithError('ERR_OWN_INVITATION', 'this invitation was made by this very entity');
    }
    if (code.addresses.length === 0)
      throw new KithError('ERR_NO_ADDRESS', 'the invitation carries no address');
    const node = this.libp2p;
    const release = this.expectOutbound(code.agent);
    const redeeming = { deadlinePassed: false };
    this.inviteDials.set(code.agent, redeeming);
    let lastError: unknown;
    try {
      for (const address of code.addresses) {
        let connection: Connection;
        try {
          connection = await node.dial(withPeer(address, code.agent), {
            signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS),
          });
        } catch (err) {
          lastError = err;
          continue;
        }
        let reply: InviteReply;
        try {
          reply = await this.exchangeInvitation(connection, code.secret);
        } catch (err) {
          if (err instanceof KithError) throw err;
          // The inviter aborted the invite stream or cut us off: no invitation of its is open.
          throw new KithError(
            'ERR_INVITATION_REFUSED',
            `the inviter refused the connection: ${(err as Error).message}`,
            'the code is used, expired or unknown; ask for a new one',
          );
        }
        const inviter = await acceptInviterReply(this.trustStore, code, reply, this.log);
        // The code's addresses are the way back to the inviter should this first link drop before
        // the two sides exchanged address records (the neighbour keeper redials by them).
        this.trustStore.addAddressHints(
          inviter.fingerprint,
          code.addresses.map((a) => a.toString()),
        );
        this.promote(code.agent);
        return inviter;
      }
    } finally {
      this.inviteDials.delete(code.agent);
      release();
      // Not redeemed: nothing more to do on that connection (and what the inviter opened on it waits).
      if (this.provisional.has(code.agent) && !this.trustStore.isTrustedAgent(code.agent))
        this.dropProvisional(code.agent, redeeming.deadlinePassed ? 'deadline' : 'refused');
    }
    throw new KithError(
      'ERR_DIAL_FAILED',
      `cannot reach the inviter at any address in the code: ${(lastError as Error)?.message}`,
      'check that the inviting node is running and reachable',
    );
  }

  private async exchangeInvitation(connection: Connection, secret: Uint8Array): Promise<InviteReply> {
    let step = 'opening the invitation stream';
    try {
      const stream = await connection.newStream(INVITE_PROTOCOL, {
        signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS),
      });
      const request: InviteRequest = {
        v: 1,
        secret: Buffer.from(secret).toString('base64url'),
        hello: buildHello(this.identity, this.trustStore),
      };
      step = 'sending the request';
      await writeJson(stream, request);
      step = 'waiting for the answer';
      const reply = await readJson<InviteReply>(readFrames(stream, CONTROL_MAX_BYTES));
      await stream.close().catch(() => undefined);
      return reply;
    } catch (err) {
      // Which step failed, and the connection's state then: the way to tell a refusal from a cut.
      this.log.debug(
        {
          err,
          step,
          connection: connection.id,
          status: connection.status,
          peer: connection.remotePeer.toString(),
        },
        'invitation exchange failed',
      );
      throw err;
    }
  }

  private async answerInvite(stream: Stream, from: AgentId): Promise<void> {
    const frames = readFrames(stream, CONTROL_MAX_BYTES);
    const request = await readJson<InviteRequest>(frames);
    this.log.debug({ from, stream: stream.id }, 'invitation request read');
    let reply: InviteReply;
    let entity: EntityRecord | undefined;
    const redeeming = { deadlinePassed: false };
    this.redeeming.set(from, redeeming);
    try {
      try {
        entity = await redeemInvitation(this.trustStore, from, request, this.log);
        reply = { v: 1, hello: buildHello(this.identity, this.trustStore) };
      } catch (err) {
        const code = err instanceof KithError ? err.code : 'ERR_INVITATION_REFUSED';
        this.log.info({ from, code }, 'refused an invitation redemption');
        reply = { v: 1, refused: code, message: (err as Error).message };
      }
      await writeJson(stream, reply);
      await stream.close().catch(() => undefined);
    } finally {
      this.redeeming.delete(from);
      if (entity === undefined && redeeming.deadlinePassed) this.dropProvisional(from, 'deadline');
    }
    if (entity !== undefined) {
      this.log.info({ fingerprint: entity.fingerprint, email: entity.email }, 'invitation redeemed');
      this.promote(from);
      for (const listener of this.redeemedListeners) listener(entity);
    }
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
    return this.trustStore
      .entities()
      .filter((e) => e.source !== 'self' && (e.trusted || e.contact || e.revokedAt !== undefined))
      .map((entity) => ({
        fingerprint: entity.fingerprint,
        name: entity.name,
        email: entity.email,
        trusted: entity.trusted,
        contact: entity.contact,
        revoked: entity.revokedAt !== undefined,
        source: entity.source,
        agents: this.trustStore.agentsOf(entity.fingerprint).map((agent) => ({
          agentId: agent.agentId,
          revoked: agent.revoked,
          notAfter: new Date(agent.notAfter).toISOString(),
          linked: this.isLinked(agent.agentId),
          addresses: this.addressBook?.addressesOf(agent.agentId) ?? [],
        })),
        addressHints: this.trustStore.addressHints(entity.fingerprint),
      }));
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
    if (connection.direction !== 'outbound' || this.inviteDials.has(remote)) return;
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
        this.dropProvisional(remote, 'refused', connection);
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
      if (ends) this.endProvisional(from, 'refused');
      // Say nothing about ourselves to a peer we do not trust.
      await writeJson(stream, { v: 1, refused: code }).catch(() => undefined);
      await stream.close().catch(() => undefined);
      if (ends) {
        this.log.info({ peer: from, code }, 'refused a hello; closing the connection');
        this.dropProvisional(from, 'refused', connection);
      }
      throw err;
    }
    await writeJson(stream, buildHello(this.identity, this.trustStore));
    await stream.close().catch(() => undefined);
    this.promote(from);
  }

  /**
   * Per inbound stream: see agent/trust/decisions.ts, `provisionalMayOpen`. A stream held there
   * ('wait') is decided again once its peer is: promoted, or cut off.
   */
  private mayOpen(peer: string, protocol: string): boolean | Promise<boolean> {
    const verdict = provisionalMayOpen({
      trusted: this.trustStore.isTrustedAgent(peer as AgentId),
      provisional: this.provisional.has(peer),
      protocol: protocol === HELLO_PROTOCOL ? 'hello' : protocol === INVITE_PROTOCOL ? 'invite' : 'other',
      openInvitation: protocol === INVITE_PROTOCOL && this.trustStore.hasOpenInvitation(),
    });
    if (verdict === 'wait') return this.whenDecided(peer).then(() => this.mayOpen(peer, protocol));
    return verdict === 'open';
  }

  private whenDecided(peer: string): Promise<void> {
    let entry = this.decided.get(peer);
    if (entry === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      entry = { promise, resolve };
      this.decided.set(peer, entry);
    }
    return entry.promise;
  }

  private provisionalLoad(address: string): { provisionalOpen: number; recentFromAddress: number } {
    const since = this.clock() - this.provisionalLimits.windowMs;
    const recent = (this.provisionalAdmissions.get(address) ?? []).filter((t) => t > since);
    if (recent.length === 0) this.provisionalAdmissions.delete(address);
    else this.provisionalAdmissions.set(address, recent);
    return { provisionalOpen: this.provisional.size, recentFromAddress: recent.length };
  }

  private markProvisional(peer: string, address?: string): void {
    if (address !== undefined) {
      this.provisionalAdmissions.set(address, [
        ...(this.provisionalAdmissions.get(address) ?? []),
        this.clock(),
      ]);
    }
    if (this.provisional.has(peer)) return;
    const timer = setTimeout(() => {
      const redeeming = this.redeeming.get(peer) ?? this.inviteDials.get(peer);
      if (redeeming !== undefined) {
        redeeming.deadlinePassed = true; // the redemption decides when it is over
        return;
      }
      if (!this.trustStore.isTrustedAgent(peer as AgentId)) {
        this.log.info({ peer }, 'closing a provisional connection that never proved itself');
        this.dropProvisional(peer, 'deadline');
      } else {
        this.endProvisional(peer, 'promoted');
      }
    }, this.provisionalMs);
    timer.unref();
    this.provisional.set(peer, timer);
  }

  /**
   * Cuts off a peer that was let in provisionally and did not (or could not) prove itself: every
   * connection of it, the one its hello came on by name (the connection manager may not list a
   * just-opened inbound connection yet, so a hang-up by peer id alone could miss it). The
   * listeners hear `end` unless the peer's provisional state ended already.
   */
  private dropProvisional(peer: string, end: 'refused' | 'deadline', connection?: Connection): void {
    this.endProvisional(peer, end);
    const connections = new Set(this.node?.getConnections(peerIdFromString(peer)) ?? []);
    if (connection !== undefined) connections.add(connection);
    this.log.debug(
      { peer, end, connections: [...connections].map((c) => c.id) },
      'cutting off a provisional peer',
    );
    for (const c of connections) {
      // Graceful, so the refusal just written reaches the peer; libp2p bounds it (1 s) and aborts then.
      void c.close().catch((err: Error) => c.abort(err));
    }
  }

  /** Clears a provisional peer's deadline and tells the listeners why it ended (once). */
  private endProvisional(peer: string, end: ProvisionalEnd): void {
    const timer = this.provisional.get(peer);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.provisional.delete(peer);
    this.decided.get(peer)?.resolve();
    this.decided.delete(peer);
    for (const listener of this.provisionalEndListeners) listener(peer as AgentId, end);
  }

  private promote(peer: string): void {
    this.endProvisional(peer, 'promoted');
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
    this.endProvisional(id, 'disconnected');
    this.linkTransport?.setLink(id as AgentId, false);
  }

  /**
   * Runs at start and every minute. Closes links to agents that are no longer trusted here
   * without any trust change firing (their certificate ran out mid-link), and renews our own
   * certificate when it is due (agent/trust/decisions.ts), handing the new one to every neighbour.
   */
  async checkCertificates(): Promise<void> {
    for (const peer of this.linkTransport?.neighbours() ?? []) {
      if (this.trustStore.isTrustedAgent(peer)) continue;
      this.log.info({ peer }, 'closing a link: its certificate is no longer valid');
      this.linkTransport?.setLink(peer, false);
      void this.node?.hangUp(peerIdFromString(peer)).catch(() => undefined);
    }
    const now = this.clock();
    if (!certificateRenewalDue(Date.parse(this.identity.certificate.body.notAfter), now)) return;
    const renewed = await renewAgentCertificate(this.identity, new Date(now));
    await this.trustStore.addAgentCertificate(renewed);
    this.identity.certificate = renewed;
    this.log.info({ notAfter: renewed.body.notAfter }, "renewed this agent's certificate");
    await this.pushHello();
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

/**
 * Which links to close when more than `max` are open: the least recently used first, never a
 * kept one (the link just opened, relay links a NATed agent depends on). Pure, so the policy is
 * testable without sockets.
 */
export function linksToClose(
  lastActivity: ReadonlyMap<string, number>,
  max: number,
  keep: (peer: string) => boolean,
): string[] {
  const excess = lastActivity.size - max;
  if (excess <= 0) return [];
  return [...lastActivity.entries()]
    .filter(([peer]) => !keep(peer))
    .sort((a, b) => a[1] - b[1])
    .slice(0, excess)
    .map(([peer]) => peer);
}

/** The peer an address names: its last /p2p/, unless that is the relay of a circuit address. */
function targetPeer(address: Multiaddr): string | undefined {
  const components = address.getComponents();
  const circuit = components.findIndex((c) => c.name === 'p2p-circuit');
  return components.slice(circuit + 1).findLast((c) => c.name === 'p2p')?.value;
}

/** The `ip:port` keys a dial of this address may reach (agent/links/gater.ts `outboundKey`). */
async function dialKeys(address: Multiaddr): Promise<string[]> {
  const components = address.getComponents();
  const port = components.find((c) => c.name === 'tcp' || c.name === 'udp')?.value;
  const host = components[0];
  // A circuit address without a target, or some transport we do not parse: as before, any.
  if (port === undefined || components.some((c) => c.name === 'p2p-circuit')) return ['*'];
  if (host.name === 'ip4' || host.name === 'ip6') return [`${host.value}:${port}`];
  if (host.name === 'dns4' || host.name === 'dns6' || host.name === 'dns') {
    const family = host.name === 'dns4' ? 4 : host.name === 'dns6' ? 6 : 0;
    // The name itself (a transport may connect to it as it is), and what it resolves to now.
    const found = await lookup(host.value ?? '', { all: true, family }).catch(() => []);
    return [`${host.value}:${port}`, ...found.map((a) => `${a.address}:${port}`)];
  }
  return ['*'];
}

function parseAddress(text: string): Multiaddr {
  try {
    return multiaddr(text);
  } catch (err) {
    throw new KithError(
      'ERR_BAD_ADDRESS',
      `not a multiaddr: ${text} (${(err as Error).message})`,
      'e.g. /ip4/203.0.113.5/tcp/4410 or /dns4/home.example.org/tcp/4410',
    );
  }
}

function withoutPeer(address: Multiaddr): Multiaddr {
  // Only the trailing /p2p/ID: a relayed address names its relay with /p2p/ too.
  const all = address.getComponents();
  const components = all.filter((c, i) => !(c.name === 'p2p' && i === all.length - 1));
  return multiaddr(components.map((c) => `/${c.name}${c.value === undefined ? '' : `/${c.value}`}`).join(''));
}

function withPeer(address: Multiaddr, peer: string): Multiaddr {
  return withoutPeer(address).encapsulate(`/p2p/${peer}`);
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

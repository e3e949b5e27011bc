import type { Connection, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { Config } from '../../config/schema.ts';
import { KithError } from '../../common/errors.ts';
import type { AgentId, Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { Db } from '../../store/db.ts';
import type { Identity } from '../identity/identity.ts';
import { readFrames, readJson, writeJson } from '../links/frames.ts';
import type { LinkManager } from '../links/links.ts';
import { preferDirect } from '../links/transport.ts';
import type { AddressBook } from '../links/types.ts';
import type { TrustStore } from '../trust/store.ts';
import { AddressCache } from './cache.ts';
import {
  MAX_RECORD_ADDRESSES,
  signAddressRecord,
  verifyAddressRecord,
  type SignedAddressRecord,
} from './records.ts';

export const ADDRESS_PROTOCOL = '/kith/addr/1';
const MESSAGE_MAX_BYTES = 256 * 1024;
const QUERY_TIMEOUT_MS = 5_000;
const MAX_ANSWER_RECORDS = 16;
const ANNOUNCE_RETRY_MS = [0, 200, 1_000, 3_000];

type Certificate = { canonical: string; signature: string };
type Item = { record: SignedAddressRecord; certificate?: Certificate };
/** Messages of the address protocol (docs/protocol.md, "Addresses"). */
type AddressMessage =
  | { t: 'announce'; record: SignedAddressRecord }
  | { t: 'query'; entity: Fingerprint }
  | { t: 'records'; items: Item[] }
  | { t: 'ok' };

/** What createReachability needs. */
export interface ReachabilityOptions {
  links: LinkManager;
  trust: TrustStore;
  identity: Identity;
  db: Db;
  config: Config['p2p'];
  log: Logger;
  clock?: () => number;
}

/**
 * Keeps neighbours informed of where this agent is, and remembers where they are: signed address
 * records announced on every new link, on every address change and periodically; cached in SQLite;
 * set aside when a dial proves them wrong; forgotten after addressTtlMs of silence. Neighbours
 * answer "where is X?" for entities they trust; a directory node answers for every agent that
 * registered with it (announced its record to it), and never relays (config refuses both roles).
 */
export class Reachability implements AddressBook {
  private readonly cache: AddressCache;
  private readonly clock: () => number;
  private lastSeq = 0;
  private lastAnnounced = '';
  private timers: ReturnType<typeof setInterval>[] = [];
  private started = false;
  private readonly onSelfUpdate = (): void => void this.announceIfChanged();

  constructor(private readonly options: ReachabilityOptions) {
    this.clock = options.clock ?? Date.now;
    this.cache = new AddressCache(options.db, this.clock);
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { links, config } = this.options;
    links.setAddressBook(this);
    await links.libp2p.handle(ADDRESS_PROTOCOL, (stream, connection) => this.onStream(stream, connection), {
      runOnLimitedConnection: true,
    });
    links.transport.onLinkChange((peer, up) => {
      if (up && this.started) void this.announceTo(peer).catch(() => undefined);
    });
    links.libp2p.addEventListener('self:peer:update', this.onSelfUpdate);
    const announce = setInterval(() => void this.announceAll(), config.announceIntervalMs);
    const forget = setInterval(
      () => this.cache.forgetOlderThan(config.addressTtlMs),
      Math.min(config.addressTtlMs, 3_600_000),
    );
    for (const timer of [announce, forget]) timer.unref();
    this.timers = [announce, forget];
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    try {
      this.options.links.libp2p.removeEventListener('self:peer:update', this.onSelfUpdate);
      await this.options.links.libp2p.unhandle(ADDRESS_PROTOCOL);
    } catch {
      // the link manager stopped first: nothing left to unregister
    }
  }

  // ---- AddressBook -----------------------------------------------------------------------

  addressesOf(agent: AgentId): string[] {
    return this.cache.get(agent, this.options.config.addressTtlMs)?.addresses ?? [];
  }

  setAsideOf(agent: AgentId): string[] {
    return this.cache.setAside(agent, this.options.config.addressTtlMs);
  }

  markWorked(agent: AgentId, address: string): void {
    this.cache.markWorked(agent, address);
  }

  markFailed(agent: AgentId, address: string): void {
    this.cache.markFailed(agent, address);
  }

  // ---- announcing ------------------------------------------------------------------------

  /** The addresses we tell others: configured announce ones, else what libp2p listens on. */
  ownAddresses(): string[] {
    const { links, config } = this.options;
    const listed = config.announce.length > 0 ? config.announce.map((a) => multiaddr(a)) : links.multiaddrs();
    return [...new Set(listed.map(stripPeer))].slice(0, MAX_RECORD_ADDRESSES);
  }

  private async ownRecord(): Promise<SignedAddressRecord> {
    const { identity } = this.options;
    this.lastSeq = Math.max(this.lastSeq + 1, this.clock());
    return signAddressRecord(identity.agentKey, {
      agent: identity.agentId,
      entity: identity.fingerprint,
      addresses: this.ownAddresses(),
      seq: this.lastSeq,
    });
  }

  private async announceIfChanged(): Promise<void> {
    if (JSON.stringify(this.ownAddresses()) !== this.lastAnnounced) await this.announceAll();
  }

  /**
   * Sends a fresh record to every linked neighbour, each retried like a new link's (announceTo):
   * an announcement lost on a connection that just died (our NAT changed its address) would
   * otherwise leave the neighbour with our previous addresses until the next interval.
   */
  async announceAll(): Promise<void> {
    if (!this.started) return;
    this.lastAnnounced = JSON.stringify(this.ownAddresses());
    await Promise.allSettled(this.options.links.transport.neighbours().map((peer) => this.announceTo(peer)));
  }

  /**
   * Announces to a neighbour whose link just came up. Both sides see the link up at slightly
   * different moments (the other may still be checking our certificate and refuse us for a few
   * milliseconds), so a refused announcement is retried a few times.
   */
  private async announceTo(peer: AgentId): Promise<void> {
    for (const delay of ANNOUNCE_RETRY_MS) {
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay).unref());
      if (!this.started || !this.options.links.isLinked(peer)) return;
      try {
        const reply = await this.send(peer, { t: 'announce', record: await this.ownRecord() });
        if (reply.t === 'ok') return;
      } catch (err) {
        this.options.log.debug({ err, peer }, 'address announcement not accepted yet');
      }
    }
  }

  private async send(peer: AgentId, message: AddressMessage): Promise<AddressMessage> {
    const connection = preferDirect(this.options.links.libp2p.getConnections(peerIdFromString(peer)));
    if (connection === undefined) throw new KithError('ERR_NO_LINK', `no open link to ${peer}`);
    const signal = AbortSignal.timeout(QUERY_TIMEOUT_MS);
    const stream = await connection.newStream(ADDRESS_PROTOCOL, { signal, runOnLimitedConnection: true });
    try {
      await writeJson(stream, message, signal);
      return await readJson<AddressMessage>(readFrames(stream, MESSAGE_MAX_BYTES));
    } finally {
      await stream.close({ signal }).catch(() => stream.abort(new Error('closing')));
    }
  }

  // ---- answering -------------------------------------------------------------------------

  private onStream(stream: Stream, connection: Connection): void {
    const from = connection.remotePeer.toString() as AgentId;
    const { trust, log } = this.options;
    if (!trust.isTrustedAgent(from)) {
      stream.abort(new Error('not a trusted agent'));
      return;
    }
    this.handle(stream, from).catch((err) => {
      log.debug({ err, from }, 'address protocol exchange failed');
      stream.abort(err as Error);
    });
  }

  private async handle(stream: Stream, from: AgentId): Promise<void> {
    const message = await readJson<AddressMessage>(readFrames(stream, MESSAGE_MAX_BYTES));
    if (message.t === 'announce') {
      const body = await this.verify(message.record);
      // A neighbour speaks for itself only; what others say about third parties is a query answer.
      if (body.agent !== from)
        throw new KithError('ERR_PROTOCOL', `${from} announced another agent's record`);
      if (this.options.trust.entityOfAgent(from) !== body.entity) {
        throw new KithError('ERR_PROTOCOL', `${from} announced a record naming another entity`);
      }
      this.cache.put(body, message.record, this.options.trust.agent(from)?.certificate, true);
      await writeJson(stream, { t: 'ok' });
      await stream.close().catch(() => undefined);
      return;
    }
    if (message.t === 'query') {
      await writeJson(stream, { t: 'records', items: await this.answer(message.entity) });
      await stream.close().catch(() => undefined);
      return;
    }
    throw new KithError('ERR_PROTOCOL', 'unexpected address message');
  }

  /**
   * Who may learn what (docs/protocol.md 5.2). A plain agent tells its neighbours where the
   * entities it trusts are (its own neighbours). A directory tells them where any agent is that
   * registered with it (announced its own record to it): in a friend-to-friend network only an
   * agent the directory trusts can open a link to register, so the directory vouches for its
   * registrants only, never for records it merely heard second-hand. Neither answers for a
   * revoked agent or entity, and every record is re-verified now: unsigned, forged or stale
   * records (signed longer than addressTtlMs ago, whatever kept them in the cache) are left out.
   */
  private async answer(entity: Fingerprint): Promise<Item[]> {
    const { trust, config, log } = this.options;
    if (!config.directory && !trust.isTrustedEntity(entity)) return [];
    if (trust.entity(entity)?.revokedAt !== undefined) return [];
    const items: Item[] = [];
    for (const cached of this.cache.ofEntity(entity, config.addressTtlMs)) {
      if (items.length >= MAX_ANSWER_RECORDS) break;
      if (trust.isRevokedAgent(cached.agent)) continue;
      if (config.directory && !cached.registered && !trust.isTrustedEntity(entity)) continue;
      try {
        const body = await this.verify(cached.record);
        if (body.agent !== cached.agent || body.entity !== entity) continue;
      } catch (err) {
        log.debug({ err, agent: cached.agent }, 'not handing on an address record');
        continue;
      }
      items.push({
        record: cached.record,
        certificate: cached.certificate ?? trust.agent(cached.agent)?.certificate,
      });
    }
    return items;
  }

  private verify(record: SignedAddressRecord) {
    return verifyAddressRecord(record, { now: this.clock(), maxAgeMs: this.options.config.addressTtlMs });
  }

  // ---- asking ----------------------------------------------------------------------------

  /**
   * "Where is X?": asks every linked neighbour for the agents of an entity, keeps the answers that
   * are signed, fresh and certified by that entity, and returns the agents it now has addresses for.
   */
  async lookup(entity: Fingerprint): Promise<AgentId[]> {
    const { links, trust, log } = this.options;
    const answers = await Promise.allSettled(
      links.transport.neighbours().map((peer) => this.send(peer, { t: 'query', entity })),
    );
    const found = new Set<AgentId>();
    for (const answer of answers) {
      if (answer.status === 'rejected')
        log.debug({ err: answer.reason as Error, entity }, 'a neighbour did not answer');
      if (answer.status !== 'fulfilled' || answer.value?.t !== 'records') continue;
      for (const item of answer.value.items.slice(0, MAX_ANSWER_RECORDS)) {
        try {
          const body = await this.verify(item.record);
          if (body.entity !== entity) throw new KithError('ERR_PROTOCOL', 'a record for another entity');
          // The agent must be certified by that entity: learn the certificate if we can check it.
          if (trust.entityOfAgent(body.agent) !== entity) {
            if (item.certificate === undefined) throw new KithError('ERR_CERT_MALFORMED', 'no certificate');
            await trust.addAgentCertificate(item.certificate);
            if (trust.entityOfAgent(body.agent) !== entity)
              throw new KithError('ERR_CERT_WRONG_ENTITY', 'wrong entity');
          }
          this.cache.put(body, item.record, item.certificate);
          found.add(body.agent);
        } catch (err) {
          log.info({ err, entity }, 'refused an address record from a neighbour');
        }
      }
    }
    return [...found];
  }

  /**
   * Links with some agent of an entity: known addresses first; when they are all gone or wrong,
   * asks the neighbours for the last known ones and tries again.
   */
  async reach(entity: Fingerprint): Promise<AgentId> {
    const { links, trust } = this.options;
    const agents = trust.certifiedAgents(entity).map((a) => a.agentId);
    for (const agent of agents) {
      if (links.isLinked(agent)) return agent;
    }
    for (const agent of agents) {
      if (this.addressesOf(agent).length === 0) continue;
      try {
        await links.connect(agent);
        return agent;
      } catch {
        // fall through to asking the neighbours
      }
    }
    // Nothing better known: the addresses the user gave with `kith trust --address`.
    if (!agents.some((agent) => this.addressesOf(agent).length > 0)) {
      const hinted = await links.dialHints(entity);
      if (hinted !== undefined) return hinted;
    }
    for (const agent of await this.lookup(entity)) {
      try {
        await links.connect(agent);
        return agent;
      } catch (err) {
        this.options.log.debug({ err, agent }, 'no link at the addresses a neighbour gave');
      }
    }
    throw new KithError('ERR_UNREACHABLE', `no agent of ${entity} can be reached now`, 'it may be offline');
  }
}

function stripPeer(address: Multiaddr): string {
  const text = address.toString();
  const at = text.lastIndexOf('/p2p/');
  return at >= 0 && !text.slice(at + 5).includes('/') ? text.slice(0, at) : text;
}

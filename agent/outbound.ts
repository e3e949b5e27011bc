import { KithError } from '../common/errors.ts';
import type { Fingerprint } from '../common/ids.ts';
import type { Logger } from '../common/logger.ts';
import type {
  DeliveryEvent as GatewayEvent,
  DeliveryService,
  GatewaySink,
  OutboundMessage,
  PreparedCopy,
  RecipientResolution,
} from '../gateway/delivery.ts';
import { parseFingerprintAddress } from '../gateway/smtp/addresses.ts';
import type { DeliveryEngine, DeliveryEvent, OutboundPayload, SharedBody } from './delivery/engine.ts';
import type { HopRecord, NewOutboxEntry, Outbox, OutboxEntry } from './queue/outbox.ts';
import { giveUpCause } from './queue/policy.ts';
import type { TrustStore } from './trust/store.ts';

/** An answer for RCPT TO now, or: fetch this fingerprint's key by route discovery first. */
export type AddressDecision = RecipientResolution | { discover: Fingerprint };

/** Which contacts an address leads to; pure so the refusal rules are easy to read and test. */
export function resolveAddress(
  address: string,
  self: Fingerprint,
  entities: readonly {
    fingerprint: Fingerprint;
    email: string;
    contact: boolean;
    revokedAt?: number;
    publicKey?: string;
  }[],
): AddressDecision {
  const byFingerprint = parseFingerprintAddress(address);
  if (byFingerprint) {
    const known = entities.find((e) => e.fingerprint === byFingerprint);
    if (byFingerprint === self)
      return { ok: false, reason: 'unknown', message: 'that is your own fingerprint' };
    if (known?.revokedAt) {
      return {
        ok: false,
        reason: 'unreachable',
        message: 'you revoked this entity; trust it again to write to it',
      };
    }
    // First contact: the key comes with a discovery answer from an agent that trusts this entity.
    if (!known?.publicKey) return { discover: byFingerprint };
    return { ok: true, fingerprint: byFingerprint, email: known.email || undefined };
  }
  const wanted = address.trim().toLowerCase();
  const matches = entities.filter((e) => e.contact && !e.revokedAt && e.email.toLowerCase() === wanted);
  if (matches.length === 0) {
    return {
      ok: false,
      reason: 'unknown',
      message:
        'no contact has this address: accept an invitation from this person first, or write to <fingerprint>@kith',
    };
  }
  if (matches.length > 1) {
    return {
      ok: false,
      reason: 'ambiguous',
      message: 'several contacts claim this address: write to <fingerprint>@kith of the one you mean',
    };
  }
  return { ok: true, fingerprint: matches[0].fingerprint, email: matches[0].email };
}

/**
 * After discovery ran for a first contact: with the key we can encrypt, so the recipient is
 * accepted (the path, if still missing, is the delivery engine's job and its failure a status
 * email). Without it the refusal is temporary: nobody answering *now* (agents offline, the
 * outer discovery rings still running) says nothing about tomorrow, and a retry may find the key.
 */
export function afterDiscovery(
  fingerprint: Fingerprint,
  entity: { publicKey?: string; email: string; revokedAt?: number } | undefined,
  waitedMs: number,
): RecipientResolution {
  if (entity?.publicKey && !entity.revokedAt) {
    return { ok: true, fingerprint, email: entity.email || undefined };
  }
  return {
    ok: false,
    reason: 'no-path-yet',
    message:
      `no agent in your web of trust answered for this fingerprint within ${Math.round(waitedMs / 1000)} s; ` +
      'try again later, or ask this person for an invitation',
  };
}

/**
 * The agent side of the gateway boundary: resolves recipients against the contacts, hands
 * messages to the delivery engine (durable in its store) and to the outbox (a BullMQ job that
 * tracks them hop by hop), and turns engine events into status for the gateway.
 */
export class AgentDeliveryService implements DeliveryService {
  constructor(
    private readonly deps: {
      self: Fingerprint;
      trust: TrustStore;
      engine: DeliveryEngine;
      outbox: Outbox;
      log: Logger;
      /** How long RCPT TO waits for discovery to bring an unknown fingerprint's key (default 10 s). */
      discoveryTimeoutMs?: number;
      /** delivery.maxAgeMs: "delayed" status emails say until when Kith keeps looking for a path. */
      maxAgeMs?: number;
    },
  ) {}

  /** First-contact lookups in flight, so concurrent RCPTs for one fingerprint ask the network once. */
  private readonly lookups = new Map<Fingerprint, Promise<RecipientResolution>>();

  async resolveRecipient(address: string): Promise<RecipientResolution> {
    const decision = resolveAddress(address, this.deps.self, this.deps.trust.entities());
    if (!('discover' in decision)) return decision;
    const fingerprint = decision.discover;
    let lookup = this.lookups.get(fingerprint);
    if (!lookup) {
      lookup = this.discoverKey(fingerprint).finally(() => this.lookups.delete(fingerprint));
      this.lookups.set(fingerprint, lookup);
    }
    return lookup;
  }

  /** Runs route discovery for an entity whose key we lack; the answer carries the key (checked, stored). */
  private async discoverKey(fingerprint: Fingerprint): Promise<RecipientResolution> {
    const { engine, trust, log } = this.deps;
    const timeoutMs = this.deps.discoveryTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    // Discovery goes on past the deadline (outer rings): a key it brings later serves the retry.
    const search = engine.discovery.find(fingerprint).catch((err: Error) => {
      log.warn({ err: err.message, fingerprint }, 'first-contact discovery failed');
    });
    await Promise.race([search, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    const result = afterDiscovery(fingerprint, trust.entity(fingerprint), timeoutMs);
    log.info({ fingerprint, found: result.ok }, 'first contact: key discovery');
    return result;
  }

  /**
   * `shared`: a copy of a list post whose body was signed and encrypted once (shareBody): only
   * this copy's key wrap is made and stored (docs/protocol.md 7.8, manifest version 2). `source`:
   * where the payload is read from when it is not the file at rawPath.
   */
  async submit(
    message: OutboundMessage & { shared?: SharedBody; source?: OutboundPayload['source'] },
  ): Promise<void> {
    await this.makeContact(message);
    await this.deps.engine.send({
      id: message.id,
      to: message.to,
      // `kith send --file`: the header ‖ the user's file where it lies (agent/files.ts).
      source: message.source ?? { kind: 'file', path: message.rawPath },
      ...(message.shared ? { shared: message.shared } : {}),
    });
    await this.deps.outbox.submit(this.outboxEntry(message));
  }

  /** Wrap-once: signs and encrypts a list post once for all its copies (DeliveryEngine.shareBody). */
  shareBody(rawPath: string, bodyPath: string): Promise<SharedBody> {
    return this.deps.engine.shareBody(rawPath, bodyPath);
  }

  /** submit() in two steps (DeliveryService.prepare): the engine's and the outbox's rows in write(). */
  async prepare(message: OutboundMessage): Promise<PreparedCopy> {
    await this.makeContact(message);
    const sealed = await this.deps.engine.prepare({
      id: message.id,
      to: message.to,
      source: { kind: 'file', path: message.rawPath },
    });
    return {
      write: () => {
        sealed.write();
        this.deps.outbox.add(this.outboxEntry(message));
      },
      start: () => {
        sealed.start();
        this.deps.outbox.queueJob(message.id);
      },
    };
  }

  private outboxEntry(message: OutboundMessage): NewOutboxEntry {
    return {
      id: message.id,
      sender: this.deps.self,
      recipient: message.to,
      rawPath: message.rawPath,
      size: message.size,
    };
  }

  private async makeContact(message: OutboundMessage): Promise<void> {
    const entity = this.deps.trust.entity(message.to);
    if (!entity?.publicKey) {
      throw new KithError('ERR_UNKNOWN_RECIPIENT_KEY', `no public key for ${message.to}`);
    }
    // Writing to someone makes them a contact, so their replies are accepted (not a neighbour).
    if (!entity.contact) {
      await this.deps.trust.addEntity(entity.publicKey, {
        trusted: entity.trusted,
        contact: true,
        source: 'wrote-first',
      });
    }
  }

  /**
   * One scheduled attempt of the outbox job: (re)start delivery and wait until the first hop has
   * it. No path yet (or no progress before the stall timeout) throws, so BullMQ backs off and
   * tries again; the engine's own stall timer moves a started message to alternate paths.
   */
  async attempt(entry: OutboxEntry, timeoutMs: number): Promise<void> {
    const { engine, outbox } = this.deps;
    if (outbox.progressOf(entry.id).hops.some((h) => h.hop >= 1)) return;
    // Finished already: the engine will not resume it, and unrecordedOutcomes() records its end.
    if (engine.outcomeOf(entry.id)) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new KithError('ERR_NO_PROGRESS', 'no hop reached yet')), timeoutMs);
      const unsubscribe = engine.onEvent((event) => {
        if (event.id !== entry.id) return;
        if (event.kind === 'progress' || event.kind === 'delivered' || event.kind === 'failed') done();
        else if (event.kind === 'stalled' && event.action === 'waiting for a path') {
          done(new KithError('ERR_NO_PATH', 'no path to the recipient yet'));
        }
      });
      function done(err?: Error): void {
        clearTimeout(timer);
        unsubscribe();
        if (err) reject(err);
        else resolve();
      }
      engine.resume(entry.id).catch(done);
    });
  }

  /** Records engine events in the outbox (job progress) and tells the gateway (status emails). */
  async onEngineEvent(event: DeliveryEvent, gateway: GatewaySink): Promise<void> {
    const { outbox } = this.deps;
    const entry = outbox.get(event.id);
    if (!entry) return; // a message we relay or received, not one we sent
    switch (event.kind) {
      case 'progress':
        await outbox.recordHop(event.id, {
          hop: event.hop,
          agent: event.agent,
          event: 'reached',
          at: event.at,
        });
        break;
      case 'held':
        await outbox.recordHop(event.id, { hop: event.hop, agent: event.agent, event: 'held', at: event.at });
        break;
      case 'chunks':
        outbox.recordChunks(event.id, event.acked, event.total);
        break;
      case 'stalled':
        await outbox.recordHop(event.id, {
          hop: event.lastHop,
          event: `stalled: ${event.action}`,
          at: event.at,
        });
        break;
      case 'delivered':
        // The "delivered" hop record in the finish's own write: one commit for both.
        await outbox.finish(event.id, 'delivered', undefined, { hop: -1, event: 'delivered', at: event.at });
        break;
      case 'failed':
        event = { ...event, reason: failedReason(event.reason, outbox.progressOf(event.id).hops) };
        await outbox.finish(event.id, 'failed', event.reason);
        break;
      default:
        return;
    }
    // hops are read only for a stall: chunk events of a large message come by the thousand
    const hops = event.kind === 'stalled' ? outbox.progressOf(event.id).hops : [];
    const status = gatewayEventFor(event, entry, hops, this.deps.maxAgeMs);
    if (!status) return;
    const final = status.kind === 'delivered' || status.kind === 'failed';
    // The final mark rides in the gateway's commit of the status email and the copy's state where
    // it takes it (one commit for the three, bench/RESULTS.md 10.9), else it is committed here.
    const mark = final ? outbox.finalReportedRider(event.id) : undefined;
    await gateway.status(status, mark);
    // Only now: a crash before this line leaves the row for reportFinished() at the next start.
    if (mark) await mark.commit();
  }

  /**
   * The final events of messages the engine has finished but the outbox still shows on their way.
   * Why: the engine stores an outcome when the report comes and the outbox records it a group
   * commit later, so a crash in between left the entry in flight for good. The engine emits an
   * outcome once and resumes only pending messages, so nothing else would ever finish it, and
   * the sender never got its status email (test/faults/kill, "the sender", seen in CI). Replayed
   * at start-up through onEngineEvent, which is idempotent.
   */
  unrecordedOutcomes(now = Date.now()): DeliveryEvent[] {
    const { engine, outbox } = this.deps;
    return outbox.unfinished().flatMap((entry): DeliveryEvent[] => {
      const outcome = engine.outcomeOf(entry.id);
      if (outcome === 'delivered') return [{ kind: 'delivered', id: entry.id, at: now }];
      if (outcome === 'failed') {
        return [{ kind: 'failed', id: entry.id, at: now, reason: entry.lastError ?? 'not delivered' }];
      }
      return [];
    });
  }

  /**
   * Hands the gateway the final status of finished messages it has not had yet (the node
   * crashed between the outbox commit and the status email, the gateway was not attached, or
   * the outbox gave a message up). Called at start-up once the gateway is there, and on give-up.
   * The gateway's status() is idempotent per copy and kind, so a repeat costs nothing.
   */
  async reportFinished(gateway: GatewaySink): Promise<number> {
    const { outbox, log } = this.deps;
    let reported = 0;
    for (const entry of outbox.finishedUnreported()) {
      const at = entry.finishedAt;
      const event =
        entry.state === 'delivered'
          ? gatewayEventFor({ kind: 'delivered', id: entry.id, at }, entry, [])
          : gatewayEventFor(
              { kind: 'failed', id: entry.id, at, reason: entry.lastError ?? 'not delivered' },
              entry,
              [],
            );
      try {
        await gateway.status(event!);
      } catch (err) {
        log.warn({ err: (err as Error).message, id: entry.id }, 'final status not handed to the gateway yet');
        continue;
      }
      await outbox.markFinalReported(entry.id);
      reported += 1;
    }
    if (reported > 0) log.info({ reported }, 'final status of finished messages handed to the gateway');
    return reported;
  }
}

/**
 * What the gateway hears of an engine event about a message we sent (undefined: nothing).
 * Pure, so the words of status emails can be checked against what the engine really emits.
 */
export function gatewayEventFor(
  event: DeliveryEvent,
  entry: Pick<OutboxEntry, 'recipient' | 'createdAt'>,
  hops: readonly HopRecord[],
  maxAgeMs?: number,
): GatewayEvent | undefined {
  const to = entry.recipient;
  const at = new Date(event.at);
  switch (event.kind) {
    case 'progress':
      return { kind: 'progress', id: event.id, to, at, hop: event.hop, hopAgent: event.agent };
    case 'stalled':
      return {
        kind: 'delayed',
        id: event.id,
        to,
        at,
        ...delayedWords(
          event,
          hops,
          maxAgeMs === undefined ? undefined : new Date(entry.createdAt + maxAgeMs),
        ),
      };
    case 'delivered':
      return { kind: 'delivered', id: event.id, to, at };
    case 'failed':
      return {
        kind: 'failed',
        id: event.id,
        to,
        at,
        reason: event.reason,
        cause: failureCause(event.reason),
      };
    default:
      return undefined;
  }
}

/**
 * A stall in words for the sender. The engine counts hops from the sender (0: the message has
 * not left this agent); the agent's id is the one recorded when that hop was reached, if a
 * report named it. Actions become sentences about what happens next, not engine states.
 */
export function delayedWords(
  stalled: { lastHop: number; action: 'alternate path' | 'waiting for a path'; reason?: string },
  hops: readonly HopRecord[],
  retryUntil?: Date,
): { hop: number; lastHop?: string; action: string } {
  const reached =
    stalled.lastHop > 0
      ? hops.filter((h) => h.hop === stalled.lastHop && h.agent && h.event === 'reached').at(-1)?.agent
      : undefined;
  const action =
    stalled.action === 'alternate path'
      ? 'Kith is trying another path through the network.'
      : retryUntil
        ? `Kith is looking for a path and will keep trying until ${retryUntil.toUTCString()}.`
        : 'Kith is looking for a path and will keep trying.';
  return {
    hop: stalled.lastHop,
    lastHop: reached,
    action: stalled.reason ? `${stalled.reason} ${action}` : action,
  };
}

/**
 * The reason recorded for an engine failure. The engine's own deadline ("no delivery before the
 * deadline") reads as expired whether or not a path was ever found, and with no path it usually
 * comes before the outbox's give-up (the engine retries every stall timeout, the outbox backs off
 * to minutes); so an age failure is worded from the hops reached, as the outbox's give-up is.
 */
export function failedReason(reason: string, hops: readonly HopRecord[]): string {
  return failureCause(reason) === 'expired' ? giveUpCause(hops).reason : reason;
}

/** Which status code a failure gets (5.4.7 expired, 5.7.1 refused, else 5.4.4 no path). */
export function failureCause(reason: string): 'expired' | 'refused' | 'no-path' {
  if (/deadline|expired/i.test(reason)) return 'expired';
  if (/refus|reject/i.test(reason)) return 'refused';
  return 'no-path';
}

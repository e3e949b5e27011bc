import { KithError } from '../common/errors.ts';
import type { Fingerprint } from '../common/ids.ts';
import type { Logger } from '../common/logger.ts';
import type {
  DeliveryEvent as GatewayEvent,
  DeliveryService,
  GatewaySink,
  OutboundMessage,
  RecipientResolution,
} from '../gateway/delivery.ts';
import { parseFingerprintAddress } from '../gateway/smtp/addresses.ts';
import type { DeliveryEngine, DeliveryEvent } from './delivery/engine.ts';
import type { Outbox, OutboxEntry } from './queue/outbox.ts';
import type { TrustStore } from './trust/store.ts';

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
): RecipientResolution {
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
    if (!known?.publicKey) {
      return {
        ok: false,
        reason: 'unreachable',
        message:
          'no key is known for this fingerprint yet: accept an invitation from this person or `kith trust` it first',
      };
    }
    return { ok: true, fingerprint: byFingerprint, email: known.email };
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
    },
  ) {}

  async resolveRecipient(address: string): Promise<RecipientResolution> {
    return resolveAddress(address, this.deps.self, this.deps.trust.entities());
  }

  async submit(message: OutboundMessage): Promise<void> {
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
    await this.deps.engine.send({
      id: message.id,
      to: message.to,
      source: { kind: 'file', path: message.rawPath },
    });
    await this.deps.outbox.submit({
      id: message.id,
      sender: this.deps.self,
      recipient: message.to,
      rawPath: message.rawPath,
      size: message.size,
    });
  }

  /**
   * One scheduled attempt of the outbox job: (re)start delivery and wait until the first hop has
   * it. No path yet (or no progress before the stall timeout) throws, so BullMQ backs off and
   * tries again; the engine's own stall timer moves a started message to alternate paths.
   */
  async attempt(entry: OutboxEntry, timeoutMs: number): Promise<void> {
    const { engine, outbox } = this.deps;
    if (outbox.progressOf(entry.id).hops.some((h) => h.hop >= 1)) return;
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
    const to = entry.recipient;
    const at = new Date(event.at);
    let status: GatewayEvent | undefined;
    switch (event.kind) {
      case 'progress':
        await outbox.recordHop(event.id, {
          hop: event.hop,
          agent: event.agent,
          event: 'reached',
          at: event.at,
        });
        status = { kind: 'progress', id: event.id, to, at, hop: event.hop, hopAgent: event.agent };
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
        status = {
          kind: 'delayed',
          id: event.id,
          to,
          at,
          lastHop: `hop ${event.lastHop}`,
          action: event.action,
        };
        break;
      case 'delivered':
        await outbox.recordHop(event.id, { hop: -1, event: 'delivered', at: event.at });
        await outbox.finish(event.id, 'delivered');
        status = { kind: 'delivered', id: event.id, to, at };
        break;
      case 'failed':
        await outbox.finish(event.id, 'failed', event.reason);
        status = { kind: 'failed', id: event.id, to, at, reason: event.reason };
        break;
      default:
        return;
    }
    if (status) await gateway.status(status);
  }
}

import type { Listener } from '@libp2p/interface';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { KithError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';

/** The part of libp2p's transport manager the supervisor drives (not on libp2p's public API). */
interface TransportManagerView {
  listen(addrs: Multiaddr[]): Promise<void>;
  getListeners(): Listener[];
}

/** A libp2p node as the supervisor sees it. */
export interface SupervisedNode {
  components?: unknown;
  addEventListener(type: 'peer:disconnect', listener: () => void): void;
  removeEventListener(type: 'peer:disconnect', listener: () => void): void;
}

/** One configured relay and whether we hold a reservation there now. */
export interface RelayStatus {
  /** The relay's multiaddr as configured. */
  relay: string;
  /** Our relayed addresses through it (empty while not reserved). */
  addresses: string[];
  /** Consecutive failed attempts since the last success. */
  failures: number;
}

/** What the supervisor needs. */
export interface ReservationSupervisorOptions {
  node: SupervisedNode;
  /** Multiaddrs of trusted relays, each ending in /p2p/<relay peer id>. */
  relays: readonly string[];
  log: Logger;
  /** First retry delay after a loss; doubles up to maxRetryMs. */
  minRetryMs?: number;
  maxRetryMs?: number;
}

type Entry = {
  relay: string;
  circuit: Multiaddr;
  listener: Listener | undefined;
  failures: number;
  busy: Promise<void> | undefined;
  nextAttempt: number;
};

/**
 * Keeps a reservation with every configured relay. libp2p reserves once when told to listen on
 * a relay's /p2p-circuit address, but after the relay restarts it does not reserve again on its
 * own (NOTES.md: not within 30 s). So we watch each relay listener: when it has no address any
 * more, we listen again through the same listener (which re-dials and re-reserves), retrying
 * with a short, capped backoff so a restarted relay serves us again within about a second.
 */
export class ReservationSupervisor {
  private readonly entries: Entry[];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private readonly minRetryMs: number;
  private readonly maxRetryMs: number;
  private readonly onDisconnect = (): void => this.schedule(0);

  constructor(private readonly options: ReservationSupervisorOptions) {
    this.minRetryMs = options.minRetryMs ?? 250;
    this.maxRetryMs = options.maxRetryMs ?? 5_000;
    this.entries = options.relays.map((relay) => ({
      relay,
      circuit: relayCircuitAddress(relay),
      listener: undefined,
      failures: 0,
      busy: undefined,
      nextAttempt: 0,
    }));
  }

  start(): void {
    if (this.running || this.entries.length === 0) return;
    this.running = true;
    this.options.node.addEventListener('peer:disconnect', this.onDisconnect);
    this.schedule(0);
  }

  /** Stops supervising; waits (bounded) for an attempt in flight. Reservations end with the node. */
  async stop(timeoutMs = 5_000): Promise<void> {
    this.running = false;
    this.options.node.removeEventListener('peer:disconnect', this.onDisconnect);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const pending = this.entries.map((e) => e.busy).filter((b) => b !== undefined);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(pending),
      new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  status(): RelayStatus[] {
    return this.entries.map((e) => ({
      relay: e.relay,
      addresses: (e.listener?.getAddrs() ?? []).map((a) => a.toString()),
      failures: e.failures,
    }));
  }

  /** True while every configured relay holds a reservation for us. */
  allReserved(): boolean {
    return this.entries.every((e) => (e.listener?.getAddrs().length ?? 0) > 0);
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check(), delayMs);
  }

  private check(): void {
    this.timer = undefined;
    if (!this.running) return;
    const now = Date.now();
    for (const entry of this.entries) {
      if (entry.busy !== undefined || now < entry.nextAttempt) continue;
      if ((entry.listener?.getAddrs().length ?? 0) > 0) continue;
      entry.busy = this.reserve(entry).finally(() => {
        entry.busy = undefined;
      });
    }
    // Losing a relay usually shows as a disconnect (which calls us at once); poll as a fallback.
    this.schedule(this.minRetryMs);
  }

  private async reserve(entry: Entry): Promise<void> {
    try {
      if (entry.listener === undefined) {
        const manager = transportManager(this.options.node);
        const before = new Set(manager.getListeners());
        try {
          await manager.listen([entry.circuit]);
        } finally {
          // The listener stays registered even when its first reservation failed; keep it.
          entry.listener = manager.getListeners().find((l) => !before.has(l));
        }
      } else {
        await entry.listener.listen(entry.circuit);
      }
      if (entry.listener === undefined || entry.listener.getAddrs().length === 0) {
        throw new KithError('ERR_RELAY_RESERVATION', `the relay ${entry.relay} gave us no address`);
      }
      if (entry.failures > 0) this.options.log.info({ relay: entry.relay }, 'relay reservation renewed');
      entry.failures = 0;
      entry.nextAttempt = 0;
    } catch (err) {
      entry.failures++;
      entry.nextAttempt = Date.now() + retryDelay(entry.failures, this.minRetryMs, this.maxRetryMs);
      this.options.log[entry.failures === 1 ? 'info' : 'debug'](
        { relay: entry.relay, failures: entry.failures, err: (err as Error).message },
        'no relay reservation',
      );
    }
  }
}

/**
 * Backoff after `failures` consecutive failures: doubling from min, capped at max. The cap is
 * low on purpose: a restarted relay must serve its NATed neighbours again within seconds, and a
 * dial to a trusted relay costs little.
 */
export function retryDelay(failures: number, minMs: number, maxMs: number): number {
  return Math.min(maxMs, minMs * 2 ** Math.max(0, failures - 1));
}

/** The /p2p-circuit listen address for a relay; the relay address must name its peer id. */
export function relayCircuitAddress(relay: string): Multiaddr {
  let address: Multiaddr;
  try {
    address = multiaddr(relay);
  } catch (err) {
    throw new KithError('ERR_BAD_ADDRESS', `not a multiaddr: ${relay}`, undefined, { cause: err });
  }
  const components = address.getComponents();
  if (components.at(-1)?.name !== 'p2p') {
    throw new KithError(
      'ERR_BAD_ADDRESS',
      `a relay address must end with /p2p/<peer id>: ${relay}`,
      'ask the relay for its full address (`kith id` on that node)',
    );
  }
  return address.encapsulate('/p2p-circuit');
}

function transportManager(node: SupervisedNode): TransportManagerView {
  const manager = (node.components as { transportManager?: TransportManagerView } | undefined)
    ?.transportManager;
  if (manager === undefined)
    throw new KithError('ERR_NOT_STARTED', 'the libp2p node exposes no transport manager');
  return manager;
}

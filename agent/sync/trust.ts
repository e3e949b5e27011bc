import type { Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { TrustChange, TrustStore } from '../trust/store.ts';
import type { ContactValue, Op, Registers, Touched } from './model.ts';

export interface TrustBridgeOptions {
  trust: TrustStore;
  /** Our own entity (never a contact of itself). */
  self: Fingerprint;
  registers: Registers;
  record: (ops: Op[]) => void;
  log: Logger;
}

/**
 * Between the trust store and the merged state: an entity trusted (an invitation redeemed, `kith
 * trust`) or revoked on one device becomes a `contact` op, and a sibling's op is made true here,
 * so the same friends are trusted, and a revoked one cut off, on every device. Fingerprints being
 * applied are remembered so the trust store's own change events for them are not recorded again.
 */
export class TrustBridge {
  private unsubscribe: (() => void) | undefined;
  private readonly applying = new Set<string>();
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly o: TrustBridgeOptions) {}

  start(): void {
    this.unsubscribe = this.o.trust.onChange((change) => this.onChange(change));
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.tail;
  }

  private onChange(change: TrustChange): void {
    if (change.kind !== 'entity-trusted' && change.kind !== 'entity-revoked') return;
    const p = change.fingerprint;
    if (p === this.o.self || this.applying.has(p)) return;
    const entity = this.o.trust.entity(p);
    const v: ContactValue = {
      key: entity?.publicKey ?? '',
      trusted: change.kind === 'entity-trusted',
      contact: entity?.contact ?? true,
      revoked: change.kind === 'entity-revoked',
    };
    this.o.record([{ t: 'contact', p, v }]);
  }

  /** Makes siblings' contact decisions true in the trust store (in order, one at a time). */
  applied(touched: Touched): Promise<void> {
    const run = this.tail.then(async () => {
      for (const p of touched.contacts) {
        if (p === this.o.self) continue;
        const v = this.o.registers.get(`c/${p}`)?.v as ContactValue | undefined;
        if (v === undefined) continue;
        this.applying.add(p);
        try {
          await this.apply(p as Fingerprint, v);
        } catch (err) {
          this.o.log.warn(
            { fingerprint: p, err: (err as Error).message },
            'could not apply a synced trust change',
          );
        } finally {
          this.applying.delete(p);
        }
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async apply(p: Fingerprint, v: ContactValue): Promise<void> {
    const { trust } = this.o;
    const now = trust.entity(p);
    if (v.revoked) {
      // An entity trusted and revoked while this device was away is recorded here as revoked too,
      // not left unknown: the same friends, and the same cut-off ones, on every device.
      if (now === undefined) {
        if (v.key)
          await trust.addEntity(v.key, {
            trusted: false,
            contact: v.contact,
            source: 'fingerprint',
            expect: p,
          });
        else trust.trustFingerprint(p);
      }
      if (trust.entity(p)?.revokedAt === undefined) trust.revoke(p);
      return;
    }
    if (!v.trusted || (now?.trusted && now.revokedAt === undefined)) return;
    if (v.key)
      await trust.addEntity(v.key, { trusted: true, contact: v.contact, source: 'fingerprint', expect: p });
    else trust.trustFingerprint(p);
  }
}

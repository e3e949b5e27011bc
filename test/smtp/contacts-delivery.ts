import { readFile } from 'node:fs/promises';
import type { Db } from '../../store/db.ts';
import type { Fingerprint, MessageId } from '../../common/ids.ts';
import type {
  DeliveryService,
  OutboundMessage,
  PreparedCopy,
  RecipientResolution,
} from '../../gateway/delivery.ts';
import { parseFingerprintAddress } from '../../gateway/smtp/addresses.ts';

/**
 * Stands in for the agent: resolves addresses from a map of contacts and records each
 * submitted copy in an SQLite outbox (committed before submit() resolves, as the agent's is).
 */
export class ContactsDelivery implements DeliveryService {
  /** Addresses whose resolution the test wants to fail temporarily. */
  readonly failing = new Set<string>();
  /** When set, submit() fails as an agent with a broken outbox would. */
  failSubmit = false;
  /** submit() fails for copies to these entities only (the others are taken). */
  readonly failSubmitTo = new Set<Fingerprint>();

  constructor(
    private readonly db: Db,
    private readonly contacts: Map<string, Fingerprint | Fingerprint[]>,
    private readonly unreachable: Set<string> = new Set(),
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS test_outbox (
      id TEXT PRIMARY KEY, sender TEXT NOT NULL, recipient TEXT NOT NULL, raw_path TEXT NOT NULL, size INTEGER NOT NULL)`);
  }

  async resolveRecipient(address: string): Promise<RecipientResolution> {
    const key = address.toLowerCase();
    if (this.failing.has(key)) throw new Error('resolver down');
    if (this.unreachable.has(key)) {
      return {
        ok: false,
        reason: 'unreachable',
        message: 'nobody you trust can reach this person yet; ask them for an invitation',
      };
    }
    // As the agent does for a key it holds (or discovers): the fingerprint form needs no contact entry.
    const byFingerprint = parseFingerprintAddress(address);
    if (byFingerprint) return { ok: true, fingerprint: byFingerprint };
    const found = this.contacts.get(key);
    if (found === undefined) {
      return {
        ok: false,
        reason: 'unknown',
        message: 'not in your contacts; accept an invitation from this person first',
      };
    }
    if (Array.isArray(found)) {
      return {
        ok: false,
        reason: 'ambiguous',
        message: 'several keys claim this address; write to the fingerprint address of the one you mean',
      };
    }
    return { ok: true, fingerprint: found, email: key };
  }

  async submit(message: OutboundMessage): Promise<void> {
    (await this.prepare(message)).write();
  }

  /** As the agent's: the row is written inside the gateway's commit. */
  async prepare(message: OutboundMessage): Promise<PreparedCopy> {
    if (this.failSubmit || this.failSubmitTo.has(message.to)) throw new Error('outbox unavailable');
    return {
      write: () =>
        void this.db
          .prepare('INSERT INTO test_outbox (id, sender, recipient, raw_path, size) VALUES (?, ?, ?, ?, ?)')
          .run(message.id, message.from, message.to, message.rawPath, message.size),
      start: () => undefined,
    };
  }

  /** Everything submitted so far, with the bytes the agent would send. */
  async outbox(): Promise<
    Array<{ id: MessageId; from: Fingerprint; to: Fingerprint; raw: Buffer; size: number }>
  > {
    return readOutbox(this.db);
  }
}

export async function readOutbox(db: Db) {
  const rows = db.prepare('SELECT * FROM test_outbox ORDER BY rowid').all() as Array<{
    id: string;
    sender: string;
    recipient: string;
    raw_path: string;
    size: number;
  }>;
  return Promise.all(
    rows.map(async (r) => ({
      id: r.id as MessageId,
      from: r.sender as Fingerprint,
      to: r.recipient as Fingerprint,
      raw: await readFile(r.raw_path),
      size: r.size,
    })),
  );
}

import { createHash, randomBytes } from 'node:crypto';
import { KithError } from '../../common/errors.ts';
import type { Db } from '../../store/db.ts';
import { invitationSecretBytes } from './invitation-code.ts';

/** Outcome of redeeming an invitation secret. */
export interface RedeemResult {
  /** The SHA-256 of the secret, the invitation's id. */
  id: string;
}

/**
 * One-time invitations (docs/protocol.md 4.5, 4.6): only the secret's hash is stored; redeeming
 * is atomic, and a failed exchange puts the invitation back.
 */
export class InvitationStore {
  constructor(
    private readonly db: Db,
    private readonly clock: () => number,
  ) {}

  /** Issues a one-time invitation secret valid for `ttlMs`; only its hash is stored. */
  issue(ttlMs: number): { secret: Uint8Array; expiresAt: number } {
    if (!Number.isInteger(ttlMs) || ttlMs <= 0) {
      throw new KithError(
        'ERR_BAD_TTL',
        `an invitation lifetime must be a positive number of ms, not ${ttlMs}`,
      );
    }
    const secret = new Uint8Array(randomBytes(invitationSecretBytes()));
    const now = this.clock();
    this.db
      .prepare('INSERT INTO trust_invitation (secret_hash, created_at, expires_at) VALUES (?, ?, ?)')
      .run(hashSecret(secret), now, now + ttlMs);
    return { secret, expiresAt: now + ttlMs };
  }

  /** True while some invitation is neither redeemed nor expired (the gater admits strangers provisionally). */
  hasOpen(): boolean {
    return (
      this.db
        .prepare('SELECT 1 FROM trust_invitation WHERE redeemed_at IS NULL AND expires_at > ? LIMIT 1')
        .get(this.clock()) !== undefined
    );
  }

  /**
   * Marks an invitation redeemed by `by`, atomically: of two concurrent redeemers exactly one
   * wins. Throws ERR_INVITATION_UNKNOWN / _USED / _EXPIRED.
   */
  redeem(secret: Uint8Array, by: string): RedeemResult {
    const id = hashSecret(secret);
    const now = this.clock();
    return this.db.transaction(() => {
      const row = this.db.prepare('SELECT * FROM trust_invitation WHERE secret_hash = ?').get(id) as
        { expires_at: number; redeemed_at: number | null } | undefined;
      if (row === undefined) throw new KithError('ERR_INVITATION_UNKNOWN', 'no such invitation');
      if (row.redeemed_at !== null)
        throw new KithError('ERR_INVITATION_USED', 'this invitation was already used');
      if (row.expires_at <= now) throw new KithError('ERR_INVITATION_EXPIRED', 'this invitation has expired');
      this.db
        .prepare('UPDATE trust_invitation SET redeemed_at = ?, redeemed_by = ? WHERE secret_hash = ?')
        .run(now, by, id);
      return { id };
    })();
  }

  /** Puts a redeemed invitation back when the exchange after redeeming failed, so the code still works. */
  unredeem(id: string): void {
    this.db
      .prepare('UPDATE trust_invitation SET redeemed_at = NULL, redeemed_by = NULL WHERE secret_hash = ?')
      .run(id);
  }
}

export function hashSecret(secret: Uint8Array): string {
  return createHash('sha256').update(secret).digest('hex');
}

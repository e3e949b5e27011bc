import { timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from '../common/logger.ts';

/** One mail account of this node: SMTP and IMAP share it. */
export interface MailAccount {
  user: string;
  password: string;
  /** The entity (fingerprint) this account sends as. */
  fingerprint: string;
  /** Addresses the account may use in MAIL FROM and From:. */
  addresses: string[];
}

export interface AuthResult {
  ok: boolean;
  account?: MailAccount;
}

/**
 * Checks SMTP/IMAP credentials. Failures are logged (never the password) and slowed down per
 * remote address: each recent failure adds a second of delay (at most 10 s) before answering,
 * so guessing passwords over loopback is slow while a user who mistyped once barely notices.
 * At most a few checks per remote address run at once (the rest wait their turn): otherwise a
 * guesser opening many connections would wait out the delays in parallel.
 */
export class Authenticator {
  private readonly failures = new Map<string, { count: number; last: number }>();
  private readonly running = new Map<string, { active: number; waiting: (() => void)[] }>();

  constructor(
    private readonly accounts: readonly MailAccount[],
    private readonly log: Logger,
    private readonly options: {
      delayPerFailureMs?: number;
      maxDelayMs?: number;
      forgetAfterMs?: number;
      /** Checks of one remote address that may run at once (default 4). */
      maxConcurrentPerRemote?: number;
    } = {},
  ) {}

  async check(
    user: string,
    password: string,
    remote: string,
    protocol: 'smtp' | 'imap',
  ): Promise<AuthResult> {
    await this.acquire(remote);
    try {
      return await this.checkNow(user, password, remote, protocol);
    } finally {
      this.release(remote);
    }
  }

  private async acquire(remote: string): Promise<void> {
    const slot = this.running.get(remote) ?? { active: 0, waiting: [] };
    this.running.set(remote, slot);
    if (slot.active < (this.options.maxConcurrentPerRemote ?? 4)) {
      slot.active++;
      return;
    }
    // release() hands its place over, so `active` stays counted for the waiter.
    await new Promise<void>((resolve) => slot.waiting.push(resolve));
  }

  private release(remote: string): void {
    const slot = this.running.get(remote);
    if (!slot) return;
    const next = slot.waiting.shift();
    if (next) next();
    else if (--slot.active === 0) this.running.delete(remote);
  }

  private async checkNow(
    user: string,
    password: string,
    remote: string,
    protocol: 'smtp' | 'imap',
  ): Promise<AuthResult> {
    const account = this.accounts.find((a) => a.user.toLowerCase() === user.toLowerCase());
    const ok = account !== undefined && sameSecret(account.password, password);
    if (ok) {
      this.failures.delete(remote);
      return { ok, account };
    }
    const entry = this.recentFailures(remote);
    entry.count += 1;
    entry.last = Date.now();
    this.failures.set(remote, entry);
    const delay = Math.min(
      (this.options.delayPerFailureMs ?? 1000) * entry.count,
      this.options.maxDelayMs ?? 10_000,
    );
    this.log.warn({ protocol, remote, user, failures: entry.count, delayMs: delay }, 'authentication failed');
    await new Promise((r) => setTimeout(r, delay));
    return { ok: false };
  }

  private recentFailures(remote: string): { count: number; last: number } {
    const entry = this.failures.get(remote);
    if (!entry || Date.now() - entry.last > (this.options.forgetAfterMs ?? 15 * 60_000)) {
      return { count: 0, last: 0 };
    }
    return entry;
  }
}

// Compare hashes so the comparison takes the same time whatever the lengths.
function sameSecret(expected: string, given: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

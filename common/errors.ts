// One error class with a stable code per failure; protocols map codes to replies in one place.

/** Every error Kith raises on purpose. `code` is stable and documented in docs/errors.md. */
export class KithError extends Error {
  constructor(
    /** Stable machine-readable code, e.g. ERR_WRONG_PASSPHRASE. */
    readonly code: string,
    message: string,
    /** What the user can do about it, printed by the CLI after the message. */
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KithError';
  }
}

export function isKithError(err: unknown, code?: string): err is KithError {
  return err instanceof KithError && (code === undefined || err.code === code);
}

/** One line for the user: message, then what to do. */
export function describeError(err: unknown): string {
  if (err instanceof KithError) return err.hint ? `${err.message} — ${err.hint}` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

import { KithError, isKithError } from '../../common/errors.ts';

/** An error smtp-server turns into a reply: responseCode plus "X.Y.Z text". */
export interface SmtpReplyError extends Error {
  responseCode: number;
}

/**
 * Every refusal of the submission server, by stable error code: basic and enhanced
 * (RFC 3463) status. The one place where Kith errors become SMTP replies.
 */
const REPLIES: Record<string, [number, string]> = {
  ERR_SMTP_SENDER_REFUSED: [553, '5.7.1'],
  ERR_SMTP_NO_FROM: [554, '5.6.0'],
  ERR_SMTP_RECIPIENT_UNKNOWN: [550, '5.1.1'],
  ERR_SMTP_RECIPIENT_AMBIGUOUS: [550, '5.1.4'],
  ERR_SMTP_RECIPIENT_UNREACHABLE: [550, '5.4.4'],
  ERR_SMTP_RECIPIENT_NO_PATH_YET: [450, '4.4.4'],
  ERR_SMTP_RESOLVE_FAILED: [451, '4.4.3'],
  ERR_SMTP_TOO_LARGE: [552, '5.3.4'],
  ERR_SMTP_HEADER_TOO_LARGE: [552, '5.3.4'],
  ERR_SMTP_MALFORMED_HEADER: [554, '5.6.0'],
  ERR_SMTP_BARE_LF: [554, '5.6.0'],
  ERR_SMTP_8BIT_HEADER: [554, '5.6.0'],
  ERR_SMTP_NUL_IN_HEADER: [554, '5.6.0'],
  ERR_SMTP_BARE_CR: [554, '5.6.0'],
  ERR_SMTP_STORE_FAILED: [451, '4.3.0'],
  ERR_SMTP_SUBMIT_FAILED: [451, '4.3.0'],
  ERR_SMTP_STORAGE_FULL: [452, '4.3.1'],
};

/**
 * Is this a full disk (or quota) anywhere down the cause chain: a blob write's ENOSPC, SQLite's
 * SQLITE_FULL? Why its own reply: RFC 3463 X.3.1 "mail system full" tells the client the fault
 * is temporary and local, so it keeps the message and retries, and tells the user what to free.
 */
export function isStorageFull(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e && typeof e === 'object' && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** The reply for an error; anything unexpected is a temporary local failure (451 4.3.0). */
export function toSmtpReply(err: unknown): SmtpReplyError {
  if (isStorageFull(err) && !(isKithError(err) && err.code === 'ERR_SMTP_STORAGE_FULL')) {
    err = new KithError(
      'ERR_SMTP_STORAGE_FULL',
      'this node is out of disk space; nothing was accepted',
      'free space in its data directory, then send again (your mail client retries)',
    );
  }
  const known = isKithError(err) ? REPLIES[err.code] : undefined;
  const [code, enhanced] = known ?? [451, '4.3.0'];
  const text = known
    ? describe(err as KithError)
    : 'local error while accepting the message; nothing was accepted, try again later';
  const reply = new Error(`${enhanced} ${text}`) as SmtpReplyError;
  reply.responseCode = code;
  return reply;
}

function describe(err: KithError): string {
  return err.hint ? `${err.message}; ${err.hint}` : err.message;
}

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
};

/** The reply for an error; anything unexpected is a temporary local failure (451 4.3.0). */
export function toSmtpReply(err: unknown): SmtpReplyError {
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

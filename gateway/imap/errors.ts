import { isKithError } from '../../common/errors.ts';
import type { Result } from './context.ts';
import { ParseError } from './values.ts';

// The one place where errors become IMAP responses (RFC 5530 response codes).
const CODES: Record<string, string> = {
  ERR_NO_MAILBOX: 'NONEXISTENT',
  ERR_MAILBOX_EXISTS: 'ALREADYEXISTS',
  ERR_SPECIAL_MAILBOX: 'CANNOT',
  ERR_BAD_MAILBOX_NAME: 'CANNOT',
  ERR_SAME_MAILBOX: 'CANNOT',
  ERR_MESSAGE_GONE: 'EXPUNGEISSUED',
  ERR_MAILSTORE_STOPPED: 'UNAVAILABLE',
  ERR_IMAP_TOOBIG: 'TOOBIG',
  ERR_IMAP_READONLY: 'READ-ONLY',
  ERR_IMAP_PRIVACY: 'PRIVACYREQUIRED',
  ERR_IMAP_AUTH: 'AUTHENTICATIONFAILED',
  ERR_IMAP_BADCHARSET: 'BADCHARSET (UTF-8 US-ASCII)',
};

/** Maps a thrown error to the tagged response; `target` commands (APPEND/COPY/MOVE) say TRYCREATE. */
export function errorToResult(err: unknown, target = false): Result {
  if (err instanceof ParseError) return { status: 'BAD', text: err.message };
  if (isKithError(err)) {
    const code = err.code === 'ERR_NO_MAILBOX' && target ? 'TRYCREATE' : CODES[err.code];
    return { status: 'NO', code, text: err.message };
  }
  return { status: 'NO', code: 'SERVERBUG', text: 'internal error' };
}

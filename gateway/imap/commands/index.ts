import type { CommandSpec } from '../context.ts';
import { append } from './append.ts';
import { authenticateCommand } from './authenticate.ts';
import { capability } from './capability.ts';
import { close, unselect } from './close.ts';
import { copy, move, uidCopy, uidMove } from './copy.ts';
import { enable } from './enable.ts';
import { expunge, uidExpunge } from './expunge.ts';
import { fetch, uidFetch } from './fetch.ts';
import { id } from './id.ts';
import { idle } from './idle.ts';
import { list, lsub } from './list.ts';
import { login } from './login.ts';
import { logout } from './logout.ts';
import { create, del, rename, subscribe, unsubscribe } from './mailboxes.ts';
import { namespace } from './namespace.ts';
import { noop } from './noop.ts';
import { search, uidSearch } from './search.ts';
import { examine, select } from './select.ts';
import { starttls } from './starttls.ts';
import { status } from './status.ts';
import { store, uidStore } from './store.ts';

/** Every command the server knows, by upper-case name ("UID FETCH" for UID forms). */
export const COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  ['CAPABILITY', capability],
  ['NOOP', noop],
  ['CHECK', { ...noop, states: ['selected'] }],
  ['LOGOUT', logout],
  ['ID', id],
  ['STARTTLS', starttls],
  ['LOGIN', login],
  ['AUTHENTICATE', authenticateCommand],
  ['NAMESPACE', namespace],
  ['ENABLE', enable],
  ['SELECT', select],
  ['EXAMINE', examine],
  ['CREATE', create],
  ['DELETE', del],
  ['RENAME', rename],
  ['SUBSCRIBE', subscribe],
  ['UNSUBSCRIBE', unsubscribe],
  ['LIST', list],
  ['LSUB', lsub],
  ['STATUS', status],
  ['APPEND', append],
  ['IDLE', idle],
  ['CLOSE', close],
  ['UNSELECT', unselect],
  ['EXPUNGE', expunge],
  ['UID EXPUNGE', uidExpunge],
  ['SEARCH', search],
  ['UID SEARCH', uidSearch],
  ['FETCH', fetch],
  ['UID FETCH', uidFetch],
  ['STORE', store],
  ['UID STORE', uidStore],
  ['COPY', copy],
  ['UID COPY', uidCopy],
  ['MOVE', move],
  ['UID MOVE', uidMove],
]);

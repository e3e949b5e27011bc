import type { Logger } from '../../common/logger.ts';
import type { Authenticator, MailAccount } from '../auth.ts';
import type { MailStore } from '../mailbox/types.ts';
import type { SelectedMailbox } from './session.ts';
import type { Value, Literal } from './values.ts';

/** Connection states of RFC 3501 section 3. */
export type ImapState = 'notauth' | 'auth' | 'selected' | 'logout';

/** The tagged completion of a command. */
export interface Result {
  /** OK, NO or BAD. */
  status: 'OK' | 'NO' | 'BAD';
  /** Response code without brackets (e.g. "APPENDUID 38505 3955"). */
  code?: string;
  /** Human-readable text. */
  text: string;
  /** Runs after the tagged response is written (STARTTLS's handshake). */
  after?: () => Promise<void>;
}

/** A parsed command as handlers get it. */
export interface Command {
  /** The client's tag. */
  tag: string;
  /** Upper-case name, "UID FETCH" style for UID commands. */
  name: string;
  /** Arguments after the name. */
  args: Value[];
  /** Literals of the command (their temporary files are removed after it completes). */
  literals: Literal[];
}

/** Options of the server that commands consult. */
export interface ServerOptions {
  /** Allow LOGIN / AUTHENTICATE without TLS. */
  allowInsecureAuth: boolean;
  /** Largest APPEND accepted (APPENDLIMIT). */
  appendLimit: number;
}

/** What a command handler may use: the session state layer and the store behind it. */
export interface CommandContext {
  /** The mailbox store (the only way to the data). */
  readonly store: MailStore;
  /** Credentials check shared with SMTP. */
  readonly auth: Authenticator;
  readonly log: Logger;
  readonly options: ServerOptions;
  /** Remote address, for logs and auth slow-down. */
  readonly remote: string;
  /** Current state. */
  readonly state: ImapState;
  /** Whether the connection is under TLS. */
  readonly secure: boolean;
  /** The selected mailbox snapshot, if any. */
  readonly selected: SelectedMailbox | null;
  /** Extensions the client ENABLEd (CONDSTORE, UTF8=ACCEPT). */
  readonly enabled: Set<string>;
  /** Capabilities to advertise in the current state. */
  capabilities(): string[];
  /** Writes raw bytes (strings as latin1). */
  write(data: string | Buffer): void;
  /** Writes an untagged response line ("* " + line + CRLF). */
  untagged(line: string): void;
  /** Waits while the socket's send buffer is full. */
  drain(): Promise<void>;
  /** Sends a continuation request ("+ text"). */
  continuation(text: string): void;
  /** Reads the client's next raw line (AUTHENTICATE responses, IDLE's DONE). */
  readLine(): Promise<string>;
  /** Upgrades the connection to TLS after the tagged OK was written. */
  startTls(): Promise<void>;
  /** Marks the session authenticated. */
  login(account: MailAccount): void;
  /** Selects a mailbox (null: back to authenticated state). */
  select(selected: SelectedMailbox | null): void;
  /** Ends the session after the current response. */
  logout(): void;
  /** Writes pending untagged updates of the selected mailbox. */
  flushUpdates(allowExpunge: boolean): void;
  /** Resolves when the store reports a change, or after ms. */
  waitForChange(ms: number): Promise<void>;
  /** The origin token the store attaches to changes this session made. */
  readonly origin: unknown;
}

/** One IMAP command: the states it is valid in and its handler. */
export interface CommandSpec {
  /** States in which the command may run. */
  states: readonly ImapState[];
  /** Whether untagged EXPUNGE may be sent right after it (not for FETCH, STORE, SEARCH). */
  noExpunge?: boolean;
  /** Runs the command; throws ParseError for syntax errors, KithError for refusals. */
  run(ctx: CommandContext, cmd: Command): Promise<Result>;
}

export const ANY: readonly ImapState[] = ['notauth', 'auth', 'selected'];
export const AUTHED: readonly ImapState[] = ['auth', 'selected'];
export const SELECTED: readonly ImapState[] = ['selected'];

/** A tagged OK. */
export function ok(text = 'done', code?: string): Result {
  return { status: 'OK', text, code };
}
/** A tagged NO. */
export function no(text: string, code?: string): Result {
  return { status: 'NO', text, code };
}
/** A tagged BAD. */
export function bad(text: string): Result {
  return { status: 'BAD', text };
}

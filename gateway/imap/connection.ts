import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from '../../common/logger.ts';
import type { Authenticator, MailAccount } from '../auth.ts';
import type { MailStore } from '../mailbox/types.ts';
import { COMMANDS } from './commands/index.ts';
import type { CommandContext, ImapState, Result, ServerOptions } from './context.ts';
import { errorToResult } from './errors.ts';
import { CommandReader, discardLiterals, type ReaderEvent } from './parser.ts';
import type { SelectedMailbox } from './session.ts';

/** What a connection needs from its server. */
export interface ConnectionDeps {
  store: MailStore;
  auth: Authenticator;
  log: Logger;
  options: ServerOptions;
  secureContext: SecureContext;
  tmpDir: string;
  /** Whether the socket is already TLS (implicit TLS port). */
  secure: boolean;
  /** Called once the connection is gone. */
  onClose(conn: ImapConnection): void;
  /** Called when a STARTTLS handshake completed. */
  onStartTls?(): void;
}

// Reading pauses whenever this much unparsed input waits, also while a command runs (a client
// that floods us while not reading a big FETCH must not grow the server's memory).
const MAX_BUFFERED = 1024 * 1024;
const MAX_LINE = 64 * 1024;
const SPILL = 256 * 1024;
const IDLE_TIMEOUT_MS = 30 * 60_000;

/** One client connection: owns the socket, the reader and the session state. */
export class ImapConnection implements CommandContext {
  state: ImapState = 'notauth';
  secure: boolean;
  selected: SelectedMailbox | null = null;
  readonly enabled = new Set<string>();
  readonly origin = Symbol('imap-session');
  readonly remote: string;
  readonly store: MailStore;
  readonly auth: Authenticator;
  log: Logger;
  readonly options: ServerOptions;
  private socket: Socket;
  private readonly reader: CommandReader;
  private pumping = false;
  private closed = false;
  private lineWaiter: ((line: string) => void) | null = null;
  private changeWaiters = new Set<() => void>();
  private readonly unsubscribe: () => void;
  private account: MailAccount | null = null;
  private busySince = 0;
  private maxBuffered = 0;
  private maxOutput = 0;

  constructor(
    socket: Socket,
    private readonly deps: ConnectionDeps,
  ) {
    this.socket = socket;
    this.secure = deps.secure;
    this.store = deps.store;
    this.auth = deps.auth;
    this.options = deps.options;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.log = deps.log.child({ remote: this.remote });
    this.reader = new CommandReader({
      maxLine: MAX_LINE,
      spillThreshold: SPILL,
      tmpDir: deps.tmpDir,
      allowLiteral: (tag, name, size) => this.allowLiteral(tag, name, size),
      sendContinuation: () => this.write('+ Ready for literal data\r\n'),
    });
    this.unsubscribe = deps.store.subscribe((change) => {
      this.selected?.observe(change);
      for (const w of this.changeWaiters) w();
    });
    this.attach(socket);
    this.write(`* OK [CAPABILITY ${this.capabilities().join(' ')}] Kith IMAP ready\r\n`);
  }

  private attach(socket: Socket): void {
    socket.setTimeout(IDLE_TIMEOUT_MS);
    // Responses go out in several writes (untagged, then tagged): without this, Nagle plus the
    // client's delayed ACK add ~40 ms to every small command.
    socket.setNoDelay?.(true);
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('timeout', this.onTimeout);
  }

  private detach(socket: Socket): void {
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('close', this.onClose);
    socket.off('timeout', this.onTimeout);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.reader.push(chunk);
    if (this.reader.buffered > this.maxBuffered) this.maxBuffered = this.reader.buffered;
    if (this.lineWaiter) this.deliverLine();
    this.flowControl();
    void this.pump();
  };

  // Pauses the socket while too much input waits; resumes once the reader consumed it.
  private flowControl(): void {
    if (this.closed) return;
    if (this.reader.buffered > MAX_BUFFERED) {
      if (!this.socket.isPaused()) this.socket.pause();
    } else if (this.socket.isPaused()) this.socket.resume();
  }

  /** The most unparsed input this connection ever held (bytes), for tests and metrics. */
  get bufferedHighWater(): number {
    return this.maxBuffered;
  }
  private readonly onError = (err: Error): void => {
    this.log.debug({ err: err.message }, 'imap socket error');
  };
  private readonly onClose = (): void => this.cleanup();
  private readonly onTimeout = (): void => {
    this.write('* BYE autologout: idle for too long\r\n');
    this.socket.end();
  };

  private allowLiteral(tag: string, name: string, size: number): string | null {
    if (name === 'APPEND') {
      if (this.state === 'notauth') return `${tag} NO not authenticated`;
      if (size > this.options.appendLimit) return `${tag} NO [TOOBIG] message larger than APPENDLIMIT`;
      return null;
    }
    // Outside APPEND, literals are strings (names, search terms, passwords): keep them small.
    return size > MAX_LINE ? `${tag} BAD literal too large` : null;
  }

  capabilities(): string[] {
    const caps = [
      'IMAP4rev1',
      'LITERAL+',
      'SASL-IR',
      'ID',
      'ENABLE',
      'IDLE',
      'NAMESPACE',
      'UNSELECT',
      'UIDPLUS',
      'CHILDREN',
    ];
    caps.push(
      'SPECIAL-USE',
      'LIST-EXTENDED',
      'LIST-STATUS',
      'MOVE',
      'CONDSTORE',
      'QRESYNC',
      'ESEARCH',
      'UTF8=ACCEPT',
      `APPENDLIMIT=${this.options.appendLimit}`,
    );
    if (this.state === 'notauth') {
      if (!this.secure) caps.push('STARTTLS');
      if (this.secure || this.options.allowInsecureAuth) caps.push('AUTH=PLAIN');
      else caps.push('LOGINDISABLED');
    }
    return caps;
  }

  write(data: string | Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    if (typeof data === 'string') this.socket.write(data, 'latin1');
    else this.socket.write(data);
    if (this.socket.writableLength > this.maxOutput) this.maxOutput = this.socket.writableLength;
  }

  /** The most output this connection ever had waiting for the client (bytes). */
  get outputHighWater(): number {
    return this.maxOutput;
  }

  untagged(line: string): void {
    this.write(`* ${line}\r\n`);
  }

  continuation(text: string): void {
    this.write(`+ ${text}\r\n`);
  }

  async drain(): Promise<void> {
    if (this.closed || this.socket.writableLength < 256 * 1024) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  readLine(): Promise<string> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error('connection closed'));
        return;
      }
      this.lineWaiter = resolve;
      this.deliverLine();
    });
  }

  private deliverLine(): void {
    const ev = this.reader.next(true);
    if (ev && ev.type === 'line' && this.lineWaiter) {
      const w = this.lineWaiter;
      this.lineWaiter = null;
      w(ev.text);
    }
    this.flowControl();
  }

  async startTls(): Promise<void> {
    const plain = this.socket;
    this.detach(plain);
    this.reader.reset();
    const secure = new TLSSocket(plain, { isServer: true, secureContext: this.deps.secureContext });
    this.socket = secure;
    this.secure = true;
    this.attach(secure);
    await new Promise<void>((resolve) => {
      secure.once('secure', () => {
        this.deps.onStartTls?.();
        resolve();
      });
      secure.once('close', resolve);
    });
  }

  login(account: MailAccount): void {
    this.account = account;
    this.state = 'auth';
    this.log = this.log.child({ user: account.user });
  }

  select(selected: SelectedMailbox | null): void {
    this.selected = selected;
    this.state = selected ? 'selected' : this.account ? 'auth' : 'notauth';
  }

  logout(): void {
    this.state = 'logout';
  }

  flushUpdates(allowExpunge: boolean): void {
    if (!this.selected) return;
    const modes = { modseq: this.enabled.has('CONDSTORE'), vanished: this.enabled.has('QRESYNC') };
    for (const line of this.selected.flush(allowExpunge, modes)) this.write(line + '\r\n');
  }

  waitForChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.changeWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.changeWaiters.add(done);
    });
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.lineWaiter) return;
    this.pumping = true;
    try {
      while (!this.closed && this.state !== 'logout' && !this.lineWaiter) {
        const ev = this.reader.next(false);
        this.flowControl();
        if (!ev) break;
        this.busySince = Date.now();
        await this.handle(ev);
        this.busySince = 0;
      }
    } catch (err) {
      this.log.error({ err }, 'imap connection failed');
      this.socket.destroy();
    } finally {
      this.pumping = false;
      this.flowControl();
    }
    if (this.state === 'logout' && !this.closed) this.socket.end();
  }

  private async handle(ev: ReaderEvent): Promise<void> {
    if (ev.type === 'bad') {
      this.write(`${ev.tag} BAD ${ev.text}\r\n`);
      return;
    }
    if (ev.type === 'reject') {
      this.write(ev.response + '\r\n');
      return;
    }
    if (ev.type === 'line') return;
    const spec = COMMANDS.get(ev.name);
    let result: Result;
    if (!spec)
      result = {
        status: 'BAD',
        text: `unknown command ${ev.name.slice(0, 40).replace(/[^\x20-\x7e]/g, '?')}`,
      };
    else if (!spec.states.includes(this.state)) {
      result = { status: 'BAD', text: `${ev.name} is not allowed in the ${this.state} state` };
    } else {
      try {
        result = await spec.run(this, ev);
      } catch (err) {
        result = errorToResult(err, ['APPEND', 'COPY', 'MOVE', 'UID COPY', 'UID MOVE'].includes(ev.name));
        if (result.code === 'SERVERBUG') this.log.error({ err, command: ev.name }, 'imap command failed');
      } finally {
        discardLiterals(ev.literals);
      }
    }
    if (this.selected?.deleted) {
      this.write('* BYE the selected mailbox was deleted\r\n');
      this.state = 'logout';
    }
    if (this.state === 'selected') this.flushUpdates(!spec?.noExpunge);
    const code = result.code ? `[${result.code}] ` : '';
    this.write(`${ev.tag} ${result.status} ${code}${result.text}\r\n`);
    await this.drain();
    if (result.after) await result.after();
  }

  /** Ends the connection (server stopping). */
  close(reason: string): void {
    if (this.closed) return;
    this.write(`* BYE ${reason}\r\n`);
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** True while a command is running (stop() waits for these, bounded). */
  get busy(): boolean {
    // A command waiting for the client (IDLE, AUTHENTICATE) is not work in progress.
    return this.busySince !== 0 && this.lineWaiter === null;
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.reader.dispose();
    for (const w of this.changeWaiters) w();
    this.lineWaiter = null;
    this.deps.onClose(this);
  }
}

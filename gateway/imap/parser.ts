import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ParseError, tokenize, type Literal, type Value } from './values.ts';

/** What the reader hands the connection. */
export type ReaderEvent =
  | { type: 'command'; tag: string; name: string; args: Value[]; literals: Literal[] }
  /** A malformed command: answer `tag BAD text` (tag '*' when even the tag was unreadable). */
  | { type: 'bad'; tag: string; text: string }
  /** A command refused before its literal arrived: write `response` as is. */
  | { type: 'reject'; tag: string; response: string }
  /** A raw line, when the connection asked for one (IDLE's DONE, AUTHENTICATE responses). */
  | { type: 'line'; text: string };

/** Limits and hooks of a command reader. */
export interface ReaderOptions {
  /** Longest line (text between literals) accepted. */
  maxLine: number;
  /** Literals larger than this go to a temporary file instead of memory. */
  spillThreshold: number;
  /** Directory for spilled literals. */
  tmpDir: string;
  /** Decides whether a literal may come: null = yes, else the tagged response refusing it. */
  allowLiteral(tag: string, name: string, size: number): string | null;
  /** Sends the continuation request for a synchronising literal. */
  sendContinuation(): void;
}

const TAG = /^[\x21\x23\x24\x26\x27\x2c-\x5b\x5d-\x7a\x7c\x7e]+$/;
const LITERAL_AT_END = /\{(\d{1,12})(\+?)\}$/;
const MAX_LITERALS = 64;

/**
 * An incremental IMAP command reader. Bytes go in with push(); next() returns complete
 * commands one by one, so the connection parses only when it is ready for the next command
 * (a pipelined DONE after IDLE is read as a line, not as a command). Line length is bounded;
 * big literals stream to disk; a malformed command becomes a BAD event and reading goes on.
 */
export class CommandReader {
  // The chunk being parsed; later chunks wait in `queue` (a list, so pushing is O(1): joining
  // every chunk onto one buffer made a flood of input cost quadratic time and memory).
  private buf: Buffer = Buffer.alloc(0);
  private queue: Buffer[] = [];
  private queued = 0;
  private parts: string[] = [];
  private literals: Literal[] = [];
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private discardingLine = false;
  private literalLeft = 0;
  private literal: Literal | null = null;
  private literalChunks: Buffer[] = [];
  private literalFd: number | null = null;
  private reject: string | null = null;
  private tag = '*';
  private name = '';

  constructor(private readonly opts: ReaderOptions) {}

  /** Bytes received from the socket. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.buf.length === 0 && this.queue.length === 0) this.buf = chunk;
    else {
      this.queue.push(chunk);
      this.queued += chunk.length;
    }
  }

  /** Bytes received but not yet consumed (for flow control). */
  get buffered(): number {
    return this.buf.length + this.queued;
  }

  // Moves the next queued chunk in once the current one is used up; false if there is none.
  private refill(): boolean {
    if (this.buf.length > 0 || this.queue.length === 0) return false;
    this.buf = this.queue.shift()!;
    this.queued -= this.buf.length;
    return true;
  }

  /** Forgets everything buffered (after STARTTLS: plaintext sent before the handshake is not trusted). */
  reset(): void {
    this.abortCommand();
    this.buf = Buffer.alloc(0);
    this.queue = [];
    this.queued = 0;
    this.pending = [];
    this.pendingLen = 0;
    this.discardingLine = false;
  }

  /** Returns the next complete event, or null until more bytes arrive. */
  next(lineMode = false): ReaderEvent | null {
    for (;;) {
      if (this.literal) {
        if (!this.readLiteral()) {
          if (this.refill()) continue;
          return null;
        }
        continue;
      }
      const lf = this.buf.indexOf(0x0a);
      if (lf < 0) {
        if (this.pendingLen + this.buf.length > this.opts.maxLine) {
          this.discardingLine = true;
          this.pending = [];
          this.pendingLen = 0;
          this.buf = Buffer.alloc(0);
        } else if (this.buf.length) {
          this.pending.push(this.buf);
          this.pendingLen += this.buf.length;
          this.buf = Buffer.alloc(0);
        }
        if (this.refill()) continue;
        return null;
      }
      let lineBuf = this.buf.subarray(0, lf);
      this.buf = this.buf.subarray(lf + 1);
      if (this.pending.length) {
        lineBuf = Buffer.concat([...this.pending, lineBuf]);
        this.pending = [];
        this.pendingLen = 0;
      }
      if (this.discardingLine || lineBuf.length > this.opts.maxLine) {
        this.discardingLine = false;
        const tag = this.parts.length ? this.tag : tagOf(lineBuf.toString('latin1'));
        this.abortCommand();
        return { type: 'bad', tag, text: 'line too long' };
      }
      let line = lineBuf.toString('latin1');
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (lineMode && this.parts.length === 0) return { type: 'line', text: line };
      if (this.parts.length === 0) {
        if (line === '') continue;
        this.tag = tagOf(line);
        this.name = nameOf(line);
      }
      const m = LITERAL_AT_END.exec(line);
      if (!m) {
        this.parts.push(line);
        return this.finishCommand();
      }
      this.parts.push(line.slice(0, m.index));
      const size = Number(m[1]);
      const sync = m[2] !== '+';
      if (this.reject === null) {
        this.reject =
          this.literals.length >= MAX_LITERALS
            ? `${this.tag} BAD too many literals`
            : this.opts.allowLiteral(this.tag, this.name, size);
      }
      if (this.reject !== null && sync) {
        // The client will not send a literal it was not invited to: the command ends here.
        const ev: ReaderEvent = { type: 'reject', tag: this.tag, response: this.reject };
        this.abortCommand();
        return ev;
      }
      if (sync) this.opts.sendContinuation();
      this.startLiteral(size);
    }
  }

  private startLiteral(size: number): void {
    this.literal = { t: 'literal', size };
    this.literalLeft = size;
    this.literalChunks = [];
    if (this.reject === null && size > this.opts.spillThreshold) {
      const file = join(this.opts.tmpDir, `lit-${randomBytes(8).toString('hex')}`);
      this.literalFd = openSync(file, 'w', 0o600);
      this.literal.file = file;
    }
  }

  // Consumes literal bytes; true when the literal is complete.
  private readLiteral(): boolean {
    const take = Math.min(this.literalLeft, this.buf.length);
    if (take > 0) {
      const chunk = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      this.literalLeft -= take;
      if (this.reject === null) {
        if (this.literalFd !== null) writeSync(this.literalFd, chunk);
        else this.literalChunks.push(Buffer.from(chunk));
      }
    }
    if (this.literalLeft > 0) return false;
    const lit = this.literal!;
    if (this.literalFd !== null) {
      closeSync(this.literalFd);
      this.literalFd = null;
    } else if (this.reject === null) {
      lit.data = Buffer.concat(this.literalChunks);
    }
    this.literalChunks = [];
    this.literals.push(lit);
    this.literal = null;
    return true;
  }

  private finishCommand(): ReaderEvent {
    const tag = this.tag;
    if (this.reject !== null) {
      const response = this.reject;
      this.abortCommand();
      return { type: 'reject', tag, response };
    }
    const parts = this.parts;
    const literals = this.literals;
    this.parts = [];
    this.literals = [];
    try {
      if (!TAG.test(tag)) throw new ParseError('missing or invalid tag');
      const values = tokenize(parts, literals);
      values.shift();
      const first = values.shift();
      if (!first || first.t !== 'atom') throw new ParseError('missing command');
      let name = first.v.toUpperCase();
      if (name === 'UID') {
        const second = values.shift();
        if (!second || second.t !== 'atom') throw new ParseError('UID needs a command');
        name = `UID ${second.v.toUpperCase()}`;
      }
      return { type: 'command', tag, name, args: values, literals };
    } catch (err) {
      discardLiterals(literals);
      return { type: 'bad', tag: TAG.test(tag) ? tag : '*', text: (err as Error).message };
    }
  }

  private abortCommand(): void {
    if (this.literalFd !== null) {
      closeSync(this.literalFd);
      this.literalFd = null;
    }
    discardLiterals(this.literal ? [...this.literals, this.literal] : this.literals);
    this.literal = null;
    this.literalLeft = 0;
    this.literalChunks = [];
    this.parts = [];
    this.literals = [];
    this.reject = null;
    this.tag = '*';
    this.name = '';
  }

  /** Closes and deletes anything half-read (connection gone). */
  dispose(): void {
    this.abortCommand();
    this.buf = Buffer.alloc(0);
    this.queue = [];
    this.queued = 0;
    this.pending = [];
  }
}

/** Deletes the temporary files of spilled literals. */
export function discardLiterals(literals: readonly Literal[]): void {
  for (const l of literals) {
    if (l.file) {
      try {
        unlinkSync(l.file);
      } catch {
        // already gone
      }
    }
  }
}

function tagOf(line: string): string {
  const sp = line.indexOf(' ');
  const tag = sp < 0 ? line : line.slice(0, sp);
  return TAG.test(tag) && tag.length <= 64 ? tag : '*';
}

function nameOf(line: string): string {
  const words = line.split(' ', 4);
  const name = (words[1] ?? '').toUpperCase();
  return name === 'UID' ? `UID ${(words[2] ?? '').toUpperCase()}` : name;
}

import net from 'node:net';
import tls from 'node:tls';

/** One SMTP reply: code, enhanced code (if any) and the text of all lines. */
export interface Reply {
  code: number;
  enhanced?: string;
  text: string;
  lines: string[];
}

/**
 * A bare SMTP client for scripting sessions byte by byte (bare LF, floods, pipelining),
 * which real clients refuse to send.
 */
export class RawSmtp {
  private buffer = '';
  private waiting: Array<(reply: Reply) => void> = [];
  private replies: Reply[] = [];
  private socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.attach();
  }

  static async connect(port: number): Promise<{ client: RawSmtp; greeting: Reply }> {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const client = new RawSmtp(socket);
    const greeting = await client.reply();
    return { client, greeting };
  }

  private attach(): void {
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (;;) {
        const match = /^(\d{3}) (.*)\r\n/m.exec(this.buffer);
        if (!match) break;
        const end = match.index + match[0].length;
        const lines = this.buffer.slice(0, end).split('\r\n').filter(Boolean);
        this.buffer = this.buffer.slice(end);
        const last = lines[lines.length - 1];
        const enhanced = /^\d{3}[ -]([245]\.\d+\.\d+) /.exec(last)?.[1];
        const reply: Reply = {
          code: Number(last.slice(0, 3)),
          enhanced,
          text: lines.map((l) => l.slice(4)).join('\n'),
          lines,
        };
        const next = this.waiting.shift();
        if (next) next(reply);
        else this.replies.push(reply);
      }
    });
    this.socket.on('error', () => undefined);
  }

  /** The next reply. */
  reply(): Promise<Reply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends one command line and returns its reply. */
  async command(line: string): Promise<Reply> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  async startTls(): Promise<void> {
    const r = await this.command('STARTTLS');
    if (r.code !== 220) throw new Error(`STARTTLS refused: ${r.lines.join(' | ')}`);
    this.socket.removeAllListeners('data');
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    this.socket = secure;
    this.buffer = '';
    this.attach();
  }

  /** EHLO, STARTTLS, EHLO, AUTH PLAIN: a logged-in session. */
  async login(user: string, password: string): Promise<Reply> {
    await this.command('EHLO client.test');
    await this.startTls();
    await this.command('EHLO client.test');
    return this.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`);
  }

  /** Sends DATA, the payload as given (dot-stuffing is the caller's), and the end marker. */
  async data(payload: string | Buffer): Promise<Reply> {
    const go = await this.command('DATA');
    if (go.code !== 354) return go;
    this.write(payload);
    const text = payload.toString('latin1');
    this.write(text.endsWith('\r\n') ? '.\r\n' : '\r\n.\r\n');
    return this.reply();
  }

  close(): void {
    this.socket.destroy();
  }
}

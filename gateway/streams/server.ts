import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { isKithError, KithError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { answerAsStream, decideRange } from './range.ts';
import type { Served, ServedCatalog } from './types.ts';

export interface StreamServerOptions {
  /** Address to listen on; loopback by default: whoever holds a link can read the transfer. */
  host: string;
  /** 0 = ephemeral. */
  port: number;
  catalog: ServedCatalog;
  log: Logger;
}

/** Bytes written per read: one chunk's worth, so memory per request stays small. */
const PIECE = 256 * 1024;

/** `/t/<token>` or `/t/<token>/<any file name>`: the name is for players and download dialogs. */
export function tokenOf(path: string): string | undefined {
  const m = /^\/t\/([A-Za-z0-9_-]{16,128})(?:\/[^/]*)?$/.exec(path.split('?')[0]);
  return m?.[1];
}

/**
 * The recipient's local HTTP server for transfers that are still arriving (docs/protocol.md,
 * "Streams"). GET and HEAD with single byte ranges (206 + Content-Range with the full length
 * from the signed manifest); bytes not arrived yet are waited for, not refused. An MP4 still
 * arriving opens as a stream (range.ts answerAsStream).
 */
export class StreamServer {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private readonly aborts = new Set<AbortController>();
  private base = '';

  constructor(private readonly options: StreamServerOptions) {}

  /** Starts listening; resolves to the base URL of links (http://host:port). */
  async start(): Promise<{ url: string; port: number }> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const { host, port } = this.options;
        reject(
          err.code === 'EADDRINUSE'
            ? new KithError(
                'ERR_PORT_IN_USE',
                `streams port ${port} on ${host} is already in use`,
                'stop what uses it, or set streams.port (KITH_STREAMS_PORT) to another port',
              )
            : new KithError(
                'ERR_STREAMS_LISTEN',
                `the streams server cannot listen on ${host}:${port}: ${err.message}`,
                'choose another streams.port (KITH_STREAMS_PORT), or set streams.enabled to false',
              ),
        );
      });
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    this.base = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
    return { url: this.base, port };
  }

  /** The link of a transfer: base URL, token, and the file name (percent-encoded). */
  linkFor(token: string, name: string): string {
    return `${this.base}/t/${token}/${encodeURIComponent(name)}`;
  }

  /** Closes the listener, ends waiting requests and open connections. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const a of this.aborts) a.abort();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    const token = tokenOf(req.url ?? '');
    const served = token ? this.options.catalog.lookup(token) : undefined;
    if (!served) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no such transfer\n');
      return;
    }
    const ended = served.ended?.();
    if (ended) {
      // Cancelled by its sender or expired: nothing more will arrive, and the player shows why.
      res.writeHead(410, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(`${ended}\n`);
      return;
    }
    const abort = new AbortController();
    this.aborts.add(abort);
    res.on('close', () => abort.abort());
    try {
      await this.serve(req, res, served, abort.signal);
    } catch (err) {
      // A transfer that ended while this request waited is cut short: the player sees an error.
      if (!abort.signal.aborted && !isKithError(err, 'ERR_TRANSFER_ENDED'))
        this.options.log.warn({ err: (err as Error).message }, 'serving a transfer failed');
      res.destroy();
    } finally {
      this.aborts.delete(abort);
    }
  }

  private async serve(
    req: IncomingMessage,
    res: ServerResponse,
    served: Served,
    signal: AbortSignal,
  ): Promise<void> {
    const length = served.length();
    let decision = decideRange(req.headers.range, length);
    // An MP4 still arriving plays only from a source its player takes for a stream (range.ts).
    const asStream = answerAsStream(served.type, served.arriving(), decision, length);
    if (asStream) decision = { kind: 'full' };
    const headers: Record<string, string | number> = {
      'Content-Type': served.type,
      'Content-Disposition': `inline; filename*=UTF-8''${encodeURIComponent(served.name)}`,
      'Accept-Ranges': length === undefined || asStream ? 'none' : 'bytes',
      'Cache-Control': 'no-store',
    };
    if (decision.kind === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${length}` }).end();
      return;
    }
    let start = 0;
    let end = length === undefined ? undefined : length - 1;
    if (decision.kind === 'partial') {
      ({ start, end } = decision);
      headers['Content-Range'] = `bytes ${start}-${end}/${length}`;
    }
    if (end !== undefined) headers['Content-Length'] = end - start + 1;
    res.writeHead(decision.kind === 'partial' ? 206 : 200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    // The status and length go out now, before the first byte has arrived: a player learns the
    // size at once, and a request waiting for bytes is visibly waiting, not unanswered.
    res.flushHeaders();
    let offset = start;
    while (end === undefined || offset <= end) {
      const want = end === undefined ? PIECE : Math.min(PIECE, end - offset + 1);
      const piece = await served.read(offset, want, signal);
      if (piece.length === 0) break;
      offset += piece.length;
      if (!res.write(piece)) await drained(res, signal);
    }
    res.end();
  }
}

function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      if (signal.aborted) reject(new Error('aborted'));
      else resolve();
    };
    res.on('drain', done);
    signal.addEventListener('abort', done);
  });
}

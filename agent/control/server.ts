import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, rmSync } from 'node:fs';
import { KithError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';

/**
 * A method callable from the CLI. It may send intermediate updates (`kith track` follows a
 * message live) before its final result.
 */
export type ControlMethod = (
  params: Record<string, unknown>,
  update: (value: unknown) => void,
) => Promise<unknown>;

/**
 * The local control channel: a unix socket (mode 0600) in the data directory through which
 * `kith invite`, `kith send`, `kith track`... talk to the running node. Wire format: one JSON
 * object per line; see docs/protocol.md "Control channel".
 */
export class ControlServer {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private readonly methods = new Map<string, ControlMethod>();

  constructor(
    private readonly path: string,
    private readonly log: Logger,
  ) {}

  register(name: string, method: ControlMethod): void {
    this.methods.set(name, method);
  }

  async start(): Promise<void> {
    rmSync(this.path, { force: true });
    this.server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      if (buffer.length > 1024 * 1024) {
        socket.destroy();
        return;
      }
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        void this.handle(socket, line);
      }
    });
  }

  private async handle(socket: Socket, line: string): Promise<void> {
    let request: { id?: unknown; method?: unknown; params?: unknown };
    try {
      request = JSON.parse(line) as typeof request;
    } catch {
      write(socket, { id: null, error: { code: 'ERR_CONTROL_BAD_REQUEST', message: 'not JSON' } });
      return;
    }
    const id = request.id ?? null;
    const method = typeof request.method === 'string' ? this.methods.get(request.method) : undefined;
    if (!method) {
      write(socket, {
        id,
        error: { code: 'ERR_CONTROL_NO_METHOD', message: `no method ${String(request.method)}` },
      });
      return;
    }
    try {
      const params = (request.params ?? {}) as Record<string, unknown>;
      const result = await method(params, (value) => write(socket, { id, update: value }));
      write(socket, { id, result: result ?? null });
    } catch (err) {
      const e =
        err instanceof KithError
          ? { code: err.code, message: err.message, hint: err.hint }
          : { code: 'ERR_INTERNAL', message: (err as Error).message };
      if (!(err instanceof KithError))
        this.log.error({ err, method: request.method }, 'control method failed');
      write(socket, { id, error: e });
    }
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    rmSync(this.path, { force: true });
  }
}

function write(socket: Socket, message: unknown): void {
  if (!socket.destroyed) socket.write(JSON.stringify(message) + '\n');
}

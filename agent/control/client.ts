import { createConnection } from 'node:net';
import { KithError } from '../../common/errors.ts';

/**
 * Calls a method of the running node over its control socket. `onUpdate` receives
 * intermediate updates; the promise resolves with the final result.
 */
export async function callNode<T = unknown>(
  socketPath: string,
  method: string,
  params: Record<string, unknown> = {},
  onUpdate?: (value: unknown) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const socket = createConnection(socketPath);
    let buffer = '';
    socket.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? new KithError(
              'ERR_NODE_NOT_RUNNING',
              'the Kith node is not running',
              'start it with `kith start`',
            )
          : err,
      );
    });
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const reply = JSON.parse(buffer.slice(0, newline)) as {
          update?: unknown;
          result?: T;
          error?: { code: string; message: string; hint?: string };
        };
        buffer = buffer.slice(newline + 1);
        if ('update' in reply) onUpdate?.(reply.update);
        else {
          socket.end();
          if (reply.error) reject(new KithError(reply.error.code, reply.error.message, reply.error.hint));
          else resolve(reply.result as T);
        }
      }
    });
    socket.on('connect', () => socket.write(JSON.stringify({ id: 1, method, params }) + '\n'));
  });
}

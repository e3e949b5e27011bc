import type { Logger } from '../../common/logger.ts';
import { connectionFromUrl, pingRedis, PrivateRedis, type RedisConnection } from './redis-server.ts';

/** The Redis a node uses: the configured one, or a private redis-server it owns. */
export interface RedisHandle {
  connection: RedisConnection;
  /** Stops the private server (no-op for a configured Redis). */
  stop(): Promise<void>;
  /** The private server, when there is one (tests restart it). */
  private?: PrivateRedis;
}

export async function openRedis(options: {
  url?: string;
  dir: string;
  binary: string;
  log: Logger;
  /** Restart the private redis-server when it dies (PrivateRedis). */
  restart?: boolean;
}): Promise<RedisHandle> {
  if (options.url) {
    const connection = connectionFromUrl(options.url);
    await pingRedis(connection);
    return { connection, stop: async () => {} };
  }
  const server = new PrivateRedis({
    dir: options.dir,
    binary: options.binary,
    log: options.log,
    restart: options.restart,
  });
  const connection = await server.start();
  return { connection, stop: () => server.stop(), private: server };
}

import { KithError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import type { Config } from '../config/schema.ts';
import { openDatabase, type Db } from '../store/db.ts';
import { BlobStore } from '../store/blobs.ts';
import { prepareDataDir, type DataPaths } from '../store/datadir.ts';
import { lockDataDir } from '../store/lock.ts';
import { loadIdentity, type Identity } from './identity/identity.ts';
import { openRedis, type RedisHandle } from './queue/connection.ts';

/** Something with a lifecycle that the node starts in order and stops in reverse. */
interface Part {
  name: string;
  stop(): Promise<void> | void;
}

export interface NodeOptions {
  config: Readonly<Config>;
  passphrase: string;
  log: Logger;
  /** An already running Redis to share (the demo runs one for all its agents). */
  redis?: RedisHandle;
}

/**
 * The one place where a node's parts are wired together: store, identity, Redis, links,
 * delivery and the gateway. Everything else takes its dependencies explicitly.
 */
export class KithNode {
  readonly config: Readonly<Config>;
  private readonly log: Logger;
  private readonly parts: Part[] = [];
  paths!: DataPaths;
  db!: Db;
  blobs!: BlobStore;
  identity!: Identity;
  redis!: RedisHandle;

  constructor(private readonly options: NodeOptions) {
    this.config = options.config;
    this.log = options.log;
  }

  async start(): Promise<void> {
    try {
      await this.startParts();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async startParts(): Promise<void> {
    this.paths = prepareDataDir(this.config.dataDir);
    const unlock = lockDataDir(this.paths.root);
    this.parts.push({ name: 'lock', stop: unlock });
    this.db = openDatabase(this.paths.database);
    this.parts.push({ name: 'database', stop: () => void this.db.close() });
    this.identity = await loadIdentity(this.db, this.options.passphrase);
    this.blobs = new BlobStore(this.paths.blobs);
    await this.blobs.init();
    this.redis =
      this.options.redis ??
      (await openRedis({
        url: this.config.redis.url,
        dir: this.paths.redis,
        binary: this.config.redis.binary,
        log: this.log,
      }));
    if (!this.options.redis) this.parts.push({ name: 'redis', stop: () => this.redis.stop() });
    this.log.info({ fingerprint: this.identity.fingerprint, agent: this.identity.agentId }, 'node started');
  }

  /** Stops every started part in reverse order, each bounded in time; safe to call twice. */
  async stop(timeoutMs = 15_000): Promise<void> {
    while (this.parts.length > 0) {
      const part = this.parts.pop()!;
      try {
        await withTimeout(Promise.resolve(part.stop()), timeoutMs, part.name);
      } catch (err) {
        this.log.warn({ part: part.name, err: (err as Error).message }, 'stopping a part failed');
      }
    }
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new KithError('ERR_STOP_TIMEOUT', `${what} did not stop within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What the streams HTTP server serves (gateway/streams/server.ts). The agent implements it over
 * its spool and received/ files (agent/streams); the gateway never sees chunks or keys.
 */
export interface Served {
  /** File name shown to the user (the last path component the sender gave). */
  readonly name: string;
  /** Content-Type, from the file name (or the stream's declared type). */
  readonly type: string;
  /**
   * Total bytes when known: a file's from the signed manifest, a live stream's once its signed
   * final segment arrived; undefined while a live stream is still open.
   */
  length(): number | undefined;
  /** True while bytes are still to come: neither saved whole nor ended (server.ts `asStream`). */
  arriving(): boolean;
  /**
   * Up to `max` bytes at `offset`, only from chunks that were authenticated and stored. Waits
   * while the bytes have not arrived; an empty buffer means the content ends before `offset`.
   * Rejects when `signal` aborts (the client went away, the server stops).
   */
  read(offset: number, max: number, signal: AbortSignal): Promise<Buffer>;
  /**
   * Why the content will never be complete (its sender cancelled it, or it expired), once that is
   * so; undefined while it may still complete. A read of bytes that never arrived then rejects.
   */
  ended?(): string | undefined;
}

/** Looks a transfer up by the unguessable token of its link. */
export interface ServedCatalog {
  lookup(token: string): Served | undefined;
}

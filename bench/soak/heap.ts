// The V8 heap of the demo's node process after a forced full GC, read over the inspector protocol
// (the demo runs with --inspect on loopback): what the JavaScript objects really hold, without
// the malloc arenas and GC slack that make RSS move by tens of MiB with no leak at all.
// Needs a global WebSocket: Node 22, or Node 20 with --experimental-websocket (bin/bench.mjs).
// `snapshot(file)` also writes a full heap snapshot (the .heapsnapshot JSON that Chrome DevTools
// and bench/soak/heap-diff.ts read), to name what holds the heap, not only how big it is.
import { createWriteStream } from 'node:fs';

export interface HeapSample {
  /** Seconds since the soak started. */
  t: number;
  /** V8 heap in use right after a full GC, KiB. */
  usedKiB: number;
}

/** The inspector's WebSocket URL from the process's stderr line "Debugger listening on ws://…". */
export function inspectorUrl(stderrLine: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(stderrLine)?.[1];
}

/** One inspector connection; `usedAfterGc()` forces a full GC, then reads the heap in use. */
export class HeapProbe {
  private socket: WebSocket;
  private opened: Promise<void>;
  private next = 1;
  private pending = new Map<number, (result: Record<string, unknown>) => void>();
  /** Where HeapProfiler.addHeapSnapshotChunk events go while a snapshot is being taken. */
  private onChunk: ((chunk: string) => void) | undefined;

  constructor(url: string) {
    if (typeof WebSocket !== 'function')
      throw new Error('no global WebSocket: run the soak with node --experimental-websocket (Node 20)');
    this.socket = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.socket.addEventListener('open', () => resolve(), { once: true });
      this.socket.addEventListener('error', () => reject(new Error(`inspector at ${url} refused`)), {
        once: true,
      });
    });
    this.socket.addEventListener('message', (event) => {
      const reply = JSON.parse(String(event.data)) as {
        id?: number;
        result?: Record<string, unknown>;
        method?: string;
        params?: { chunk?: string };
      };
      // The snapshot arrives as events, in order, all before the reply to takeHeapSnapshot.
      if (reply.method === 'HeapProfiler.addHeapSnapshotChunk') this.onChunk?.(reply.params?.chunk ?? '');
      if (reply.id === undefined) return;
      this.pending.get(reply.id)?.(reply.result ?? {});
      this.pending.delete(reply.id);
    });
  }

  private async call(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>> {
    await this.opened;
    const id = this.next++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  async usedAfterGc(): Promise<number> {
    await this.call('HeapProfiler.collectGarbage');
    const usage = await this.call('Runtime.getHeapUsage');
    return Math.round(Number(usage.usedSize) / 1024);
  }

  /**
   * Forces a full GC, then writes a heap snapshot to `file`. Why the GC first: the snapshot then
   * holds only what is reachable, so two of them differ by what is retained, not by garbage.
   * The demo's event loop stops while V8 walks the heap (seconds for ~80 MiB on a loaded machine).
   */
  async snapshot(file: string): Promise<void> {
    await this.call('HeapProfiler.collectGarbage');
    const out = createWriteStream(file);
    this.onChunk = (chunk) => out.write(chunk);
    try {
      await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    } finally {
      this.onChunk = undefined;
      await new Promise<void>((resolve, reject) =>
        out.end((err?: Error | null) => (err ? reject(err) : resolve())),
      );
    }
  }

  close(): void {
    this.socket.close();
  }
}

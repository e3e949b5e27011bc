import { Queue, Worker, type Job } from 'bullmq';
import type { AgentId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { HeldRef, TransitEvent } from '../delivery/engine.ts';
import { nextRetryDelay } from './policy.ts';
import { keepReconciled } from './reconcile.ts';
import type { RedisConnection } from './redis-server.ts';

/** What the transit queue needs of the relay (the DeliveryEngine implements it). */
export interface TransitRelay {
  /** Hears when a packet is held and released; returns an unsubscribe. */
  onTransit(listener: (event: TransitEvent) => void): () => void;
  /** Held packets in arrival order: the durable truth (delivery_held). */
  heldIndex(afterSeq: number, limit: number): HeldRef[];
  /** True while the packet waits. */
  isHeld(seq: number): boolean;
  /** Tries to hand on what is held for `next` now. */
  retryHeld(next: AgentId): Promise<void>;
}

export interface TransitQueueOptions {
  connection: RedisConnection;
  /** Redis key prefix of this node. */
  prefix: string;
  log: Logger;
  relay: TransitRelay;
  /** Asks the link layer to link with the next hop (throws when it cannot be reached now). */
  dial: (agent: AgentId) => Promise<void>;
  /** First attempt this long after the packet was held (the link-up path usually wins before). */
  firstDelayMs?: number;
  /** Backoff before attempt n+1 (default: the outbox's 1 s, 2 s, 4 s ... 5 min). */
  retryDelay?: (attemptsMade: number) => number;
  clock?: () => number;
}

/** The job's progress: what `kith`-side tooling and tests can read about a held packet. */
export interface TransitProgress {
  next: AgentId;
  expiresAt: number;
  attempts: number;
  lastTryAt: number;
  lastError?: string;
}

type TransitJobData = HeldRef;

const jobId = (seq: number) => `held-${seq}`;

/**
 * Packets this agent holds for an unreachable next hop, as BullMQ jobs: each retries with
 * exponential backoff, asking the link layer to dial the next hop and the relay to hand the packet
 * on, records its attempts as job progress, and is removed once the packet is handed on or
 * expires. The truth stays in SQLite (delivery_held): a job Redis lost is re-created from it at
 * start, when Redis comes back, and every `reconcileMs`.
 */
export class TransitQueue {
  private queue?: Queue;
  private worker?: Worker;
  private stopReconciling?: () => void;
  private unsubscribe?: () => void;
  private reconciling = false;
  private readonly clock: () => number;

  constructor(private readonly options: TransitQueueOptions) {
    this.clock = options.clock ?? Date.now;
  }

  async start(reconcileMs = 30_000): Promise<void> {
    const { connection, prefix, log } = this.options;
    const retryDelay = this.options.retryDelay ?? nextRetryDelay;
    this.queue = new Queue('transit', { connection, prefix });
    this.queue.on('error', (err) => log.warn({ err: err.message }, 'transit queue error'));
    this.worker = new Worker('transit', (job) => this.process(job as Job<TransitJobData>), {
      connection,
      prefix,
      concurrency: 8,
      settings: { backoffStrategy: (attempts: number) => retryDelay(attempts) },
    });
    this.worker.on('error', (err) => log.warn({ err: err.message }, 'transit worker error'));
    this.unsubscribe = this.options.relay.onTransit((event) => {
      if (event.kind === 'held') void this.schedule(event.packet).catch(() => undefined);
      else void this.remove(event.seq);
    });
    await this.reconcile();
    this.stopReconciling = keepReconciled(this.queue, () => this.reconcile(), reconcileMs);
  }

  /** Ensures every held packet has a live job; returns how many were (re-)created. */
  async reconcile(): Promise<number> {
    if (this.reconciling || !this.queue) return 0;
    this.reconciling = true;
    let created = 0;
    try {
      let after = 0;
      for (;;) {
        const batch = this.options.relay.heldIndex(after, 500);
        if (batch.length === 0) break;
        for (const packet of batch) {
          after = packet.seq;
          const job = await this.queue.getJob(jobId(packet.seq));
          if (job && !(await job.isCompleted()) && !(await job.isFailed())) continue;
          if (job) await job.remove().catch(() => undefined);
          await this.schedule(packet);
          created++;
        }
      }
    } finally {
      this.reconciling = false;
    }
    if (created > 0) this.options.log.info({ created }, 'transit jobs re-created from the store');
    return created;
  }

  /** The job of a held packet, if Redis has it (tests, tooling). */
  async job(seq: number): Promise<Job | undefined> {
    return (await this.queue?.getJob(jobId(seq))) ?? undefined;
  }

  private async schedule(packet: HeldRef): Promise<void> {
    await this.queue!.add('hand on', packet, {
      jobId: jobId(packet.seq),
      delay: this.options.firstDelayMs ?? 1000,
      attempts: 1_000_000,
      backoff: { type: 'custom' },
      removeOnComplete: true,
      removeOnFail: true,
    });
  }

  private async remove(seq: number): Promise<void> {
    // An active job is locked and cannot be removed: it finds the packet gone and completes.
    await this.queue
      ?.remove(jobId(seq))
      .then(() => undefined)
      .catch(() => undefined);
  }

  private async process(job: Job<TransitJobData>): Promise<void> {
    const { relay, dial } = this.options;
    const { seq, next, expiresAt } = job.data;
    // Handed on (the link came up) or expired and pruned by the relay: nothing left to do.
    if (!relay.isHeld(seq) || expiresAt < this.clock()) return;
    const progress: TransitProgress = {
      next,
      expiresAt,
      attempts: job.attemptsMade + 1,
      lastTryAt: this.clock(),
    };
    try {
      await dial(next);
      await relay.retryHeld(next);
      if (relay.isHeld(seq)) throw new Error('the next hop did not take the packet');
    } catch (err) {
      progress.lastError = (err as Error).message;
      await job.updateProgress({ ...progress }).catch(() => undefined);
      throw err;
    }
    await job.updateProgress({ ...progress }).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopReconciling?.();
    this.unsubscribe?.();
    await this.worker?.close();
    await this.queue?.close();
  }
}

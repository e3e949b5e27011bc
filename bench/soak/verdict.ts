// The soak's verdict from its samples (pure): per process, RSS at start, after warm-up, at the end
// and at most; fd counts after warm-up and at the end; and whether either grew.

export interface Sample {
  /** Seconds since the soak started. */
  t: number;
  rssKiB: number;
  fds: number;
}

export interface ProcessVerdict {
  label: string;
  startKiB: number;
  /** Median RSS over the window just after warm-up: the baseline growth is measured against. */
  warmKiB: number;
  /** Median RSS over the last window of traffic. */
  endKiB: number;
  maxKiB: number;
  growth: number;
  fdsWarmMax: number;
  fdsEndMin: number;
  fdsStart: number;
  fdsEnd: number;
  rssGrew: boolean;
  fdsGrew: boolean;
}

export const RSS_LIMIT = 0.1;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/**
 * Why medians over windows: RSS of a Node process moves by tens of MiB with each GC cycle, so two
 * single samples can differ by more than 10% with no leak at all; a leak moves the whole window.
 * Why "min at the end above max after warm-up" for fds: connections open and close all the time,
 * so single counts jitter; a leak raises the floor above everything seen before.
 */
export function judge(
  label: string,
  samples: Sample[],
  window: { warmupEnd: number; trafficEnd: number; length: number },
): ProcessVerdict {
  const inWarm = samples.filter((s) => s.t >= window.warmupEnd && s.t < window.warmupEnd + window.length);
  const inEnd = samples.filter((s) => s.t <= window.trafficEnd && s.t > window.trafficEnd - window.length);
  const warm = inWarm.length > 0 ? inWarm : samples.slice(0, 1);
  const end = inEnd.length > 0 ? inEnd : samples.slice(-1);
  const warmKiB = median(warm.map((s) => s.rssKiB));
  const endKiB = median(end.map((s) => s.rssKiB));
  const fdsWarmMax = Math.max(...warm.map((s) => s.fds));
  const fdsEndMin = Math.min(...end.map((s) => s.fds));
  const growth = warmKiB > 0 ? endKiB / warmKiB - 1 : 0;
  return {
    label,
    startKiB: samples[0]?.rssKiB ?? 0,
    warmKiB,
    endKiB,
    maxKiB: Math.max(...samples.map((s) => s.rssKiB)),
    growth,
    fdsWarmMax,
    fdsEndMin,
    fdsStart: samples[0]?.fds ?? 0,
    fdsEnd: samples.at(-1)?.fds ?? 0,
    rssGrew: growth > RSS_LIMIT,
    fdsGrew: fdsEndMin > fdsWarmMax,
  };
}

const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;

export function verdictLine(v: ProcessVerdict): string {
  return (
    `${v.label.padEnd(24)} RSS start ${mib(v.startKiB)}, after warm-up ${mib(v.warmKiB)}, ` +
    `end ${mib(v.endKiB)}, max ${mib(v.maxKiB)} (${v.growth >= 0 ? '+' : ''}${(v.growth * 100).toFixed(1)}%` +
    `${v.rssGrew ? ' GREW' : ''}); fds start ${v.fdsStart}, warm max ${v.fdsWarmMax}, end min ${v.fdsEndMin}, ` +
    `end ${v.fdsEnd}${v.fdsGrew ? ' GREW' : ''}`
  );
}

/**
 * When the warm-up ends: the time the `messages`-th message was accepted. Why messages and not
 * minutes: what fills up during warm-up is counted in messages (BullMQ keeps each queue's last
 * 1,000 completed jobs in Redis; caches of message ids), so on a loaded machine that accepted a
 * fifth of the offered rate a 20-minute warm-up ended long before they were full (RESULTS 9).
 * Undefined when fewer were accepted.
 */
export function warmupEndByMessages(acceptedAtSeconds: number[], messages: number): number | undefined {
  const sorted = [...acceptedAtSeconds].sort((a, b) => a - b);
  return sorted[messages - 1];
}

export interface RateCheck {
  warmRate: number;
  endRate: number;
  /** The two windows compared ran at rates within RATE_TOLERANCE of each other. */
  comparable: boolean;
}

export const RATE_TOLERANCE = 0.2;

/**
 * The accepted rate in the two windows the RSS verdict compares. Why: a working set (queues in
 * flight, buffers, Redis's pending jobs) grows with the rate, so RSS after warm-up against RSS at
 * the end says something about a leak only when both windows carried the same traffic; a run
 * whose rate changed by more than RATE_TOLERANCE is inconclusive, not passed or failed.
 */
export function rateCheck(
  acceptedAtSeconds: number[],
  window: { warmupEnd: number; trafficEnd: number; length: number },
): RateCheck {
  const count = (from: number, to: number) => acceptedAtSeconds.filter((t) => t >= from && t < to).length;
  const warmRate = count(window.warmupEnd, window.warmupEnd + window.length) / window.length;
  const endRate = count(window.trafficEnd - window.length, window.trafficEnd) / window.length;
  const comparable = warmRate > 0 && Math.abs(endRate / warmRate - 1) <= RATE_TOLERANCE;
  return { warmRate, endRate, comparable };
}

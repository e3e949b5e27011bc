// Small helpers every benchmark shares: percentiles, formatting, peak memory of a process.
import { readFileSync } from 'node:fs';

/** The q-quantile (0..1) of samples, nearest rank; NaN when there are none. */
export function percentile(samples: number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Peak resident set size (VmHWM) of a live process in bytes, or undefined once it is gone. */
export function peakRss(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export function mib(bytes: number | undefined): string {
  return bytes === undefined ? 'n/a' : `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}

/** A ratio printed so that the direction is explicit: "2.50× baseline". */
export function ratio(value: number, baseline: number): string {
  return `${(value / baseline).toFixed(2)}× baseline`;
}

/** One table row: a label, Kith's figure, the baseline's, and their ratio. */
export function row(label: string, kith: number, base: number, unit: string, digits = 1): string {
  return (
    label.padEnd(44) +
    `${kith.toFixed(digits)} ${unit}`.padStart(16) +
    `${base.toFixed(digits)} ${unit}`.padStart(16) +
    ratio(kith, base).padStart(18)
  );
}

export function header(title: string): string {
  return `\n${title}\n${'figure'.padEnd(44)}${'kith'.padStart(16)}${'baseline'.padStart(16)}${'ratio'.padStart(18)}`;
}

/** Current resident set size (VmRSS) of a live process in bytes. */
export function currentRss(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

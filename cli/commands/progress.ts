/**
 * Rate and time left of a transfer for `kith track`: from samples of (bytes acknowledged, time).
 * Why a window: acknowledgements come in bursts of a window of chunks, and a path change pauses
 * them; the last few seconds say more about the next ones than the average since the start.
 */
export class RateMeter {
  private readonly samples: { bytes: number; at: number }[] = [];

  constructor(private readonly windowMs = 5000) {}

  sample(bytes: number, at: number): void {
    const last = this.samples.at(-1);
    if (last && bytes < last.bytes) this.samples.length = 0; // the transfer restarted
    this.samples.push({ bytes, at });
    while (this.samples.length > 2 && at - this.samples[0].at > this.windowMs) this.samples.shift();
  }

  /** Bytes per second over the window; undefined until two samples are apart in time. */
  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.at <= first.at) return undefined;
    return (last.bytes - first.bytes) / ((last.at - first.at) / 1000);
  }

  /** Seconds until `total` at the current rate; undefined when there is no rate yet. */
  secondsLeft(total: number): number | undefined {
    const rate = this.rate();
    const last = this.samples.at(-1);
    if (!rate || rate <= 0 || !last) return undefined;
    return Math.max(0, (total - last.bytes) / rate);
  }
}

export function formatRate(bytesPerSecond: number | undefined): string {
  if (bytesPerSecond === undefined) return '–';
  const units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
  let v = bytesPerSecond;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatLeft(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

import { describe, expect, it } from '@jest/globals';
import { RateMeter, formatLeft, formatRate } from '../../cli/commands/progress.ts';

describe('kith track: rate and time left', () => {
  it('measures the rate over the last seconds, not since the start', () => {
    const m = new RateMeter(5000);
    expect(m.rate()).toBeUndefined();
    m.sample(0, 0);
    m.sample(1024 * 1024, 1000); // 1 MiB/s
    expect(m.rate()).toBe(1024 * 1024);
    expect(m.secondsLeft(10 * 1024 * 1024)).toBe(9);
    // A stall, then fast again: after the window only the fast part counts.
    m.sample(1024 * 1024, 11_000);
    m.sample(21 * 1024 * 1024, 16_000);
    expect(m.rate()).toBe(4 * 1024 * 1024);
  });
  it('starts over when the acknowledged count goes back (a transfer restarted)', () => {
    const m = new RateMeter();
    m.sample(5_000_000, 0);
    m.sample(6_000_000, 1000);
    m.sample(0, 2000);
    expect(m.rate()).toBeUndefined();
  });
  it('formats for a terminal line', () => {
    expect(formatRate(undefined)).toBe('–');
    expect(formatRate(500)).toBe('500 B/s');
    expect(formatRate(3.5 * 1024 * 1024)).toBe('3.5 MiB/s');
    expect(formatLeft(undefined)).toBe('–');
    expect(formatLeft(65)).toBe('1:05');
    expect(formatLeft(3725)).toBe('1:02:05');
  });
});

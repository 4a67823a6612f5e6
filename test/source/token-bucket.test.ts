// The postcopy push's bandwidth cap, on a clock the test moves: bytes go out
// while the budget lasts, then only as fast as it refills, and an idle
// spell saves no more than a short burst.
import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../src/source/token-bucket.ts';

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('TokenBucket', () => {
  it('lets a full bucket go at once, then waits exactly as long as the overdraft takes to refill', () => {
    const c = clock();
    // 1 MB/s; 20 ms of it is 20,000 bytes, less than one 64 KiB frame, so the frame sets the size.
    const bucket = new TokenBucket(1_000_000, 65_536, c.now);
    expect(bucket.waitMs()).toBe(0);
    bucket.spend(65_536);
    // Empty, not overdrawn: one more frame may go, and is paid back after.
    expect(bucket.waitMs()).toBe(0);
    bucket.spend(65_536);
    expect(bucket.waitMs()).toBeCloseTo(65.536, 6);
    c.advance(40);
    expect(bucket.waitMs()).toBeCloseTo(25.536, 6);
    c.advance(25.536);
    expect(bucket.waitMs()).toBe(0);
  });

  it('sends no more than the rate allows over a long run, however the spends are sized', () => {
    const c = clock();
    const bucket = new TokenBucket(10_000_000, 262_160, c.now);
    let sent = 0;
    const started = c.now();
    for (let i = 0; i < 10_000; i++) {
      const wait = bucket.waitMs();
      if (wait > 0) {
        c.advance(wait);
        continue;
      }
      const bytes = 16 + 4096 * (1 + (i % 64));
      bucket.spend(bytes);
      sent += bytes;
    }
    const seconds = (c.now() - started) / 1000;
    // Never above the rate beyond the first bucketful (plus the one spend that overdraws it).
    expect(sent).toBeLessThanOrEqual(10_000_000 * seconds + 262_160 + 262_160);
    expect(sent).toBeGreaterThan(10_000_000 * seconds * 0.99);
  });

  it('saves at most a short burst while idle', () => {
    const c = clock();
    const bucket = new TokenBucket(100_000_000, 4096, c.now);
    bucket.spend(2_000_000);
    c.advance(60_000);
    // 20 ms at 100 MB/s is 2 MB: spending it leaves nothing, an idle minute notwithstanding.
    bucket.spend(2_000_000);
    expect(bucket.waitMs()).toBe(0);
    bucket.spend(1);
    expect(bucket.waitMs()).toBeGreaterThan(0);
  });

  it('refuses a rate that is not positive', () => {
    expect(() => new TokenBucket(0, 4096)).toThrow(/positive rate/);
    expect(() => new TokenBucket(Number.NaN, 4096)).toThrow(/positive rate/);
  });
});

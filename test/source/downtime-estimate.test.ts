// Precopy switches over only when the pages left fit the downtime limit at
// the rate the last round moved bytes over the link; pages that went as
// zero markers must not make the link look faster than it is.
import { describe, expect, it } from 'vitest';
import { expectedDowntimeMs } from '../../src/source/downtime-estimate.ts';

const PAGE = 4096;
const MIB = 1 << 20;

describe('expectedDowntimeMs', () => {
  it('a first round over a mostly zero 1 GiB guest: the 64 MiB of data set the rate, not the 262,144 pages covered', () => {
    // The figures of a 1 GiB memwork demo with 64 MiB written: 64 MiB and
    // 16,384 frame headers and zero markers in 170 ms, then 16,384 pages dirty.
    const round = { wireBytes: 64 * MIB + 300_000, elapsedMs: 170 };
    const expected = expectedDowntimeMs(16_384, PAGE, round);
    expect(expected).toBeGreaterThan(165);
    expect(expected).toBeLessThan(170);
    // Counting covered pages instead said about 10 ms: under a 30 ms limit
    // it switched over, and the stop-and-copy took 97 ms.
    expect((16_384 * PAGE) / ((262_144 * PAGE) / round.elapsedMs)).toBeLessThan(30);
  });

  it('scales with the dirty pages and the round time, and inversely with the bytes moved', () => {
    const base = expectedDowntimeMs(1000, PAGE, { wireBytes: 8 * MIB, elapsedMs: 10 });
    expect(expectedDowntimeMs(2000, PAGE, { wireBytes: 8 * MIB, elapsedMs: 10 })).toBeCloseTo(2 * base, 9);
    expect(expectedDowntimeMs(1000, PAGE, { wireBytes: 8 * MIB, elapsedMs: 20 })).toBeCloseTo(2 * base, 9);
    expect(expectedDowntimeMs(1000, PAGE, { wireBytes: 16 * MIB, elapsedMs: 10 })).toBeCloseTo(base / 2, 9);
  });

  it('nothing dirty fits any limit; dirty pages after a round that moved nothing fit none', () => {
    expect(expectedDowntimeMs(0, PAGE, { wireBytes: 0, elapsedMs: 5 })).toBe(0);
    expect(expectedDowntimeMs(1, PAGE, { wireBytes: 0, elapsedMs: 5 })).toBe(Infinity);
    expect(Number.isFinite(expectedDowntimeMs(1, PAGE, { wireBytes: 4096, elapsedMs: 0 }))).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import { CodeCache, GRANULE_SHIFT, type RegionFn } from '../../../src/guest/cpu/code-cache.ts';

const PAGE = 4096;
const region = (pc: number): RegionFn => () => pc;

describe('CodeCache', () => {
  it('finds a region by the word it was entered at, and nothing elsewhere', () => {
    const cache = new CodeCache(1 << 30);
    const fn = region(1);
    cache.insert(3 * PAGE + 8, fn, [[3 * PAGE + 8, 3 * PAGE + 24]]);
    expect(cache.lookup(3 * PAGE + 8)).toBe(fn);
    expect(cache.lookup(3 * PAGE + 12)).toBeUndefined();
    expect(cache.lookup(4 * PAGE + 8)).toBeUndefined();
    expect(cache.marks[(3 * PAGE + 8) >>> GRANULE_SHIFT]).toBe(1);
  });

  it('drops the regions of a page a store hit, and reuses its tables for another page', () => {
    const cache = new CodeCache(64 * PAGE);
    const a = region(1);
    const b = region(2);
    cache.insert(5 * PAGE, a, [[5 * PAGE, 5 * PAGE + 16]]);
    cache.insert(6 * PAGE, b, [[6 * PAGE, 6 * PAGE + 16]]);
    // Data beside the code, same granule: the regions stay.
    cache.storeHit(5 * PAGE + 32, 4);
    expect(cache.lookup(5 * PAGE)).toBe(a);
    cache.storeHit(5 * PAGE + 4, 4);
    expect(cache.lookup(5 * PAGE)).toBeUndefined();
    expect(cache.marks[(5 * PAGE) >>> GRANULE_SHIFT]).toBe(0);
    expect(cache.lookup(6 * PAGE)).toBe(b);
    // Page 9 takes page 5's freed tables: nothing of page 5 may show through either page.
    const c = region(3);
    cache.insert(9 * PAGE + 40, c, [[9 * PAGE + 40, 9 * PAGE + 48]]);
    expect(cache.lookup(9 * PAGE + 40)).toBe(c);
    expect(cache.lookup(9 * PAGE)).toBeUndefined();
    expect(cache.lookup(5 * PAGE + 40)).toBeUndefined();
    cache.storeHit(9 * PAGE + 4, 4);
    expect(cache.lookup(9 * PAGE + 40)).toBe(c);
  });

  it('forgets everything on invalidateAll, and takes new regions after', () => {
    const cache = new CodeCache(64 * PAGE);
    cache.insert(PAGE, region(1), [[PAGE, PAGE + 8]]);
    cache.insert(2 * PAGE, region(2), [[2 * PAGE, 2 * PAGE + 8]]);
    cache.invalidateAll();
    expect(cache.lookup(PAGE)).toBeUndefined();
    expect(cache.lookup(2 * PAGE)).toBeUndefined();
    expect(cache.marks.some((m) => m !== 0)).toBe(false);
    const fn = region(4);
    cache.insert(2 * PAGE, fn, [[2 * PAGE, 2 * PAGE + 8]]);
    expect(cache.lookup(2 * PAGE)).toBe(fn);
  });

  it('drops every page a range invalidation covers, and only those', () => {
    const cache = new CodeCache(64 * PAGE);
    for (let p = 10; p < 14; p++) cache.insert(p * PAGE, region(p), [[p * PAGE, p * PAGE + 8]]);
    cache.invalidate(11 * PAGE + 100, PAGE);
    expect(cache.lookup(10 * PAGE)).toBeDefined();
    expect(cache.lookup(11 * PAGE)).toBeUndefined();
    expect(cache.lookup(12 * PAGE)).toBeUndefined();
    expect(cache.lookup(13 * PAGE)).toBeDefined();
  });
});

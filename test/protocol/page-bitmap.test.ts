import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PageBitmap } from '../../src/protocol/page-bitmap.ts';

describe('page bitmap', () => {
  it('encodes and decodes any page set unchanged (runs or bits, whichever is smaller)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2000 }).chain((n) => fc.tuple(fc.constant(n), fc.uniqueArray(fc.integer({ min: 0, max: n - 1 })))), ([n, pages]) => {
        const b = new PageBitmap(n);
        for (const p of pages) b.set(p);
        const back = PageBitmap.from(n, b.encode());
        expect(back.count).toBe(pages.length);
        for (let p = 0; p < n; p++) expect(back.has(p)).toBe(b.has(p));
      }),
    );
  });

  it('finds the next clear page after a cursor, wrapping around', () => {
    const b = new PageBitmap(100);
    b.setRange(0, 100);
    b.clear(5);
    b.clear(70);
    expect(b.nextClear(6)).toBe(70);
    expect(b.nextClear(71)).toBe(5);
    b.set(5);
    b.set(70);
    expect(b.nextClear(0)).toBeUndefined();
    expect(b.full).toBe(true);
  });

  it('picks runs for contiguous sets and bits for scattered ones', () => {
    const contiguous = new PageBitmap(4096);
    contiguous.setRange(10, 3000);
    expect(contiguous.encode()).toEqual({ encoding: 'runs', runs: [10, 3000] });
    const scattered = new PageBitmap(4096);
    for (let p = 0; p < 4096; p += 2) scattered.set(p);
    expect(scattered.encode().encoding).toBe('bits');
  });
});

/**
 * Any set of pages, then `range` over [start, start + count): every bit is
 * what `want` says of its page (whether it was set before, whether it is in
 * the range), and the count agrees with the bits.
 */
function checkRange(range: (b: PageBitmap, start: number, count: number) => void, want: (wasSet: boolean, inRange: boolean) => boolean): void {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 300 }).chain((n) =>
        fc.tuple(fc.constant(n), fc.array(fc.boolean(), { minLength: n, maxLength: n }), fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: 0, max: n })),
      ),
      ([n, flags, start, length]) => {
        const count = Math.min(length, n - start);
        const b = new PageBitmap(n);
        flags.forEach((set, p) => {
          if (set) b.set(p);
        });
        range(b, start, count);
        let expected = 0;
        for (let p = 0; p < n; p++) {
          const bit = want(flags[p], p >= start && p < start + count);
          expect(b.has(p)).toBe(bit);
          if (bit) expected++;
        }
        expect(b.count).toBe(expected);
      },
    ),
  );
}

describe('page bitmap setRange', () => {
  it('sets exactly [start, start + count) and counts only the pages that were clear, whatever was set', () => {
    checkRange((b, start, count) => b.setRange(start, count), (wasSet, inRange) => wasSet || inRange);
  });

  it('sets whole 32-page words, including bit 31, and a page set twice counts once', () => {
    const b = new PageBitmap(128);
    b.set(40);
    b.setRange(31, 66);
    expect(b.count).toBe(66);
    expect([b.has(30), b.has(31), b.has(63), b.has(96), b.has(97)]).toEqual([false, true, true, true, false]);
    b.setRange(0, 128);
    expect(b.full).toBe(true);
  });
});

describe('page bitmap clearRange', () => {
  it('clears exactly [start, start + count) and keeps the count right, whatever was set', () => {
    checkRange((b, start, count) => b.clearRange(start, count), (wasSet, inRange) => wasSet && !inRange);
  });

  it('clears whole 32-page words, including bit 31', () => {
    const b = new PageBitmap(128);
    b.setRange(0, 128);
    b.clearRange(31, 66);
    expect(b.count).toBe(62);
    expect([b.has(30), b.has(31), b.has(96), b.has(97)]).toEqual([true, false, false, true]);
  });
});

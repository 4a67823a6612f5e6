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

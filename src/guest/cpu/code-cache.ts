// Compiled regions of guest code, found by RAM offset through a two-level table
// (page, then word in page) so the dispatcher never hashes. Stores must not run
// stale code: RAM that compiled code was read from is marked per 256-byte
// granule, the granularity compiled stores check inline, and a store that hits
// a mark throws away every region of that page.
import { PAGE_SHIFT } from './ram.ts';

/**
 * A compiled region: runs guest code from its entry until it leaves the region,
 * and returns the next pc as an int32. An odd value means "interpret the
 * instruction at value - 1 once" (it needs the bus, traps, or does not fit the budget).
 */
export type RegionFn = () => number;

export const GRANULE_SHIFT = 8;
const WORDS_PER_PAGE = 1 << (PAGE_SHIFT - 2);
const GRANULES_PER_PAGE = 1 << (PAGE_SHIFT - GRANULE_SHIFT);

export class CodeCache {
  /** Non-zero where some compiled region was read from this granule of RAM. */
  readonly marks: Uint8Array;
  private readonly pages: (RegionFn[] | undefined)[];

  constructor(ramSize: number) {
    this.marks = new Uint8Array(ramSize >>> GRANULE_SHIFT);
    this.pages = new Array<RegionFn[] | undefined>(ramSize >>> PAGE_SHIFT).fill(undefined);
  }

  lookup(off: number): RegionFn | undefined {
    const page = this.pages[off >>> PAGE_SHIFT];
    return page === undefined ? undefined : page[(off >>> 2) & (WORDS_PER_PAGE - 1)];
  }

  /** Remember `fn` as the region entered at `off`, compiled from RAM [first, end). */
  insert(off: number, fn: RegionFn, first: number, end: number): void {
    const index = off >>> PAGE_SHIFT;
    let page = this.pages[index];
    if (page === undefined) {
      page = new Array<RegionFn>(WORDS_PER_PAGE);
      this.pages[index] = page;
    }
    page[(off >>> 2) & (WORDS_PER_PAGE - 1)] = fn;
    this.marks.fill(1, first >>> GRANULE_SHIFT, ((end - 1) >>> GRANULE_SHIFT) + 1);
  }

  /** Forget every region read from RAM overlapping [off, off + length). */
  invalidate(off: number, length: number): void {
    if (length <= 0) return;
    const firstPage = off >>> PAGE_SHIFT;
    const lastPage = Math.min((off + length - 1) >>> PAGE_SHIFT, this.pages.length - 1);
    for (let p = firstPage; p <= lastPage; p++) {
      if (this.pages[p] === undefined) continue;
      this.pages[p] = undefined;
      this.marks.fill(0, p * GRANULES_PER_PAGE, (p + 1) * GRANULES_PER_PAGE);
    }
  }

  invalidateAll(): void {
    this.pages.fill(undefined);
    this.marks.fill(0);
  }
}

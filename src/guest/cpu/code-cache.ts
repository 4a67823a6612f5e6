// Compiled regions of guest code, found by RAM offset through a two-level table
// (page, then word in page) so the dispatcher never hashes. Stores must not run
// stale code: RAM that compiled code was read from is marked per 256-byte
// granule, which compiled stores check inline (a hit leaves the store to the
// interpreter), and per word, which the interpreter checks so that data that
// merely shares a granule with code does not throw compiled code away. A store
// onto a compiled word drops every region of that page.
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
  /** Per page with regions: one bit per word that some region was compiled from. */
  private readonly words: (Uint32Array | undefined)[];
  /** Nothing inserted since construction or the last invalidateAll(). */
  private empty = true;

  constructor(readonly ramSize: number) {
    this.marks = new Uint8Array(ramSize >>> GRANULE_SHIFT);
    this.pages = new Array<RegionFn[] | undefined>(ramSize >>> PAGE_SHIFT).fill(undefined);
    this.words = new Array<Uint32Array | undefined>(ramSize >>> PAGE_SHIFT).fill(undefined);
  }

  lookup(off: number): RegionFn | undefined {
    const page = this.pages[off >>> PAGE_SHIFT];
    return page === undefined ? undefined : page[(off >>> 2) & (WORDS_PER_PAGE - 1)];
  }

  /** Remember `fn` as the region entered at `off`, compiled from the RAM ranges [start, end) in `sources`. */
  insert(off: number, fn: RegionFn, sources: readonly (readonly [number, number])[]): void {
    const index = off >>> PAGE_SHIFT;
    let page = this.pages[index];
    let words = this.words[index];
    if (page === undefined || words === undefined) {
      page = new Array<RegionFn>(WORDS_PER_PAGE);
      words = new Uint32Array(WORDS_PER_PAGE / 32);
      this.pages[index] = page;
      this.words[index] = words;
    }
    page[(off >>> 2) & (WORDS_PER_PAGE - 1)] = fn;
    this.empty = false;
    for (const [start, end] of sources) {
      if (end <= start) continue;
      this.marks.fill(1, start >>> GRANULE_SHIFT, ((end - 1) >>> GRANULE_SHIFT) + 1);
      for (let w = (start >>> 2) & (WORDS_PER_PAGE - 1); w < (((end - 1) >>> 2) & (WORDS_PER_PAGE - 1)) + 1; w++) {
        words[w >>> 5] |= 1 << (w & 31);
      }
    }
  }

  /** A store of `size` bytes at `off` landed in a marked granule: drop the page's regions if it hit code. */
  storeHit(off: number, size: number): void {
    const words = this.words[off >>> PAGE_SHIFT];
    if (words === undefined) return;
    const w = (off >>> 2) & (WORDS_PER_PAGE - 1);
    // Stores are aligned, so `size` bytes never span two words.
    if ((words[w >>> 5] & (1 << (w & 31))) !== 0) this.invalidate(off, size);
  }

  /** Forget every region read from RAM overlapping [off, off + length). */
  invalidate(off: number, length: number): void {
    if (length <= 0) return;
    const firstPage = off >>> PAGE_SHIFT;
    const lastPage = Math.min((off + length - 1) >>> PAGE_SHIFT, this.pages.length - 1);
    for (let p = firstPage; p <= lastPage; p++) {
      if (this.pages[p] === undefined) continue;
      this.pages[p] = undefined;
      this.words[p] = undefined;
      this.marks.fill(0, p * GRANULES_PER_PAGE, (p + 1) * GRANULES_PER_PAGE);
    }
  }

  invalidateAll(): void {
    // A fresh cache (a restored hart's) holds nothing: its tables cost milliseconds to clear for a large RAM.
    if (this.empty) return;
    this.empty = true;
    this.pages.fill(undefined);
    this.words.fill(undefined);
    this.marks.fill(0);
  }
}

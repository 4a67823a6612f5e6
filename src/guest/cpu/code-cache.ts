// Compiled regions of guest code, found by RAM offset through a two-level table
// (page, then word in page) so the dispatcher never hashes. Stores must not run
// stale code: RAM that compiled code was read from is marked per 256-byte
// granule, which compiled stores check inline (a hit leaves the store to the
// interpreter), and per word, which the interpreter checks so that data that
// merely shares a granule with code does not throw compiled code away. A store
// onto a compiled word drops every region of that page.
//
// The first level maps a page to a slot through a typed array, not to the
// page's table through a JS array: typed arrays are zero-filled memory the
// kernel maps on first touch, so a cache for 1 GiB costs nothing up front,
// where two JS arrays of 262,144 entries took 15-22 ms to build. A migration
// destination builds it between the handshake and 'ready', so that was setup.
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
/** Slot 0 is "no regions on this page". */
const NO_SLOT = 0;
const NO_REGIONS: RegionFn[] = [];

export class CodeCache {
  /** Non-zero where some compiled region was read from this granule of RAM. */
  readonly marks: Uint8Array;
  /** Per page: the slot of its tables, or NO_SLOT. */
  private readonly slotOfPage: Int32Array;
  /** Per slot: the regions entered at each word of its page. */
  private regions: RegionFn[][] = [NO_REGIONS];
  /** Per slot: one bit per word of its page that some region was compiled from. */
  private words: Uint32Array[] = [new Uint32Array(0)];
  /** Slots of invalidated pages, reused before the tables grow. */
  private freeSlots: number[] = [];

  constructor(readonly ramSize: number) {
    this.marks = new Uint8Array(ramSize >>> GRANULE_SHIFT);
    this.slotOfPage = new Int32Array(ramSize >>> PAGE_SHIFT);
  }

  lookup(off: number): RegionFn | undefined {
    const slot = this.slotOfPage[off >>> PAGE_SHIFT];
    return slot === NO_SLOT ? undefined : this.regions[slot][(off >>> 2) & (WORDS_PER_PAGE - 1)];
  }

  /** Remember `fn` as the region entered at `off`, compiled from the RAM ranges [start, end) in `sources`. */
  insert(off: number, fn: RegionFn, sources: readonly (readonly [number, number])[]): void {
    const index = off >>> PAGE_SHIFT;
    let slot = this.slotOfPage[index];
    if (slot === NO_SLOT) {
      slot = this.freeSlots.pop() ?? this.regions.length;
      this.regions[slot] = new Array<RegionFn>(WORDS_PER_PAGE);
      this.words[slot] = new Uint32Array(WORDS_PER_PAGE / 32);
      this.slotOfPage[index] = slot;
    }
    const words = this.words[slot];
    this.regions[slot][(off >>> 2) & (WORDS_PER_PAGE - 1)] = fn;
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
    const slot = this.slotOfPage[off >>> PAGE_SHIFT];
    if (slot === NO_SLOT) return;
    const words = this.words[slot];
    const w = (off >>> 2) & (WORDS_PER_PAGE - 1);
    // Stores are aligned, so `size` bytes never span two words.
    if ((words[w >>> 5] & (1 << (w & 31))) !== 0) this.invalidate(off, size);
  }

  /** Forget every region read from RAM overlapping [off, off + length). */
  invalidate(off: number, length: number): void {
    if (length <= 0) return;
    const firstPage = off >>> PAGE_SHIFT;
    const lastPage = Math.min((off + length - 1) >>> PAGE_SHIFT, this.slotOfPage.length - 1);
    for (let p = firstPage; p <= lastPage; p++) {
      const slot = this.slotOfPage[p];
      if (slot === NO_SLOT) continue;
      this.slotOfPage[p] = NO_SLOT;
      // Its compiled functions are garbage now, not kept alive until the slot is reused.
      this.regions[slot] = NO_REGIONS;
      this.freeSlots.push(slot);
      this.marks.fill(0, p * GRANULES_PER_PAGE, (p + 1) * GRANULES_PER_PAGE);
    }
  }

  invalidateAll(): void {
    // A fresh cache (a restored hart's) holds nothing: clearing its tables would touch every page of them.
    if (this.regions.length === 1) return;
    this.regions = [NO_REGIONS];
    this.words = [new Uint32Array(0)];
    this.freeSlots = [];
    this.slotOfPage.fill(NO_SLOT);
    this.marks.fill(0);
  }
}

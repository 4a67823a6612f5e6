// One bit per guest page: which pages the destination holds, or which the
// source has sent. Also the wire encodings of that set for recovery (runs or
// raw bits, whichever is smaller).
import { pageIndex, type PageIndex } from './layout.ts';

export type EncodedPageSet =
  | { readonly encoding: 'runs'; readonly runs: readonly number[] }
  | { readonly encoding: 'bits'; readonly bits: Uint8Array };

export class PageBitmap {
  readonly pageCount: number;
  private readonly words: Uint32Array;
  private setCount = 0;

  constructor(pageCount: number) {
    this.pageCount = pageCount;
    this.words = new Uint32Array(Math.ceil(pageCount / 32));
  }

  get count(): number {
    return this.setCount;
  }

  get full(): boolean {
    return this.setCount === this.pageCount;
  }

  has(page: number): boolean {
    return (this.words[page >>> 5] & (1 << (page & 31))) !== 0;
  }

  /** Sets a bit; returns whether it was clear before. */
  set(page: number): boolean {
    const w = page >>> 5;
    const bit = 1 << (page & 31);
    if ((this.words[w] & bit) !== 0) return false;
    this.words[w] |= bit;
    this.setCount++;
    return true;
  }

  /** Clears a bit; returns whether it was set before. */
  clear(page: number): boolean {
    const w = page >>> 5;
    const bit = 1 << (page & 31);
    if ((this.words[w] & bit) === 0) return false;
    this.words[w] &= ~bit;
    this.setCount--;
    return true;
  }

  setRange(start: number, count: number): void {
    for (let p = start; p < start + count; p++) this.set(p);
  }

  clearAll(): void {
    this.words.fill(0);
    this.setCount = 0;
  }

  /** The first clear page at or after `from`, wrapping around; undefined when full. */
  nextClear(from: number): PageIndex | undefined {
    if (this.full || this.pageCount === 0) return undefined;
    const start = from >= this.pageCount ? 0 : from;
    const found = this.scanClear(start, this.pageCount);
    return found ?? this.scanClear(0, start);
  }

  /** Length of the run of clear pages starting at `start`, at most `max`. */
  clearRunLength(start: number, max: number): number {
    let n = 0;
    while (n < max && start + n < this.pageCount && !this.has(start + n)) n++;
    return n;
  }

  /** Length of the run of set pages starting at `start`, at most `max`. */
  setRunLength(start: number, max: number): number {
    let n = 0;
    while (n < max && start + n < this.pageCount && this.has(start + n)) n++;
    return n;
  }

  /** The set pages as [start, length, start, length, ...]. */
  toRuns(): number[] {
    const runs: number[] = [];
    let p = 0;
    while (p < this.pageCount) {
      if (this.words[p >>> 5] === 0 && (p & 31) === 0) {
        p += 32;
        continue;
      }
      if (!this.has(p)) {
        p++;
        continue;
      }
      const len = this.setRunLength(p, this.pageCount - p);
      runs.push(p, len);
      p += len;
    }
    return runs;
  }

  /** The smaller of the two wire encodings. */
  encode(): EncodedPageSet {
    const runs = this.toRuns();
    // msgpack spends at most 5 bytes per run bound; raw bits cost pageCount/8.
    if (runs.length * 5 <= Math.ceil(this.pageCount / 8)) return { encoding: 'runs', runs };
    const bytes = new Uint8Array(this.words.buffer, 0, Math.ceil(this.pageCount / 8));
    return { encoding: 'bits', bits: bytes.slice() };
  }

  /** Replaces the contents with a decoded (already validated) page set. */
  assign(set: EncodedPageSet): void {
    this.clearAll();
    if (set.encoding === 'runs') {
      for (let i = 0; i < set.runs.length; i += 2) this.setRange(set.runs[i], set.runs[i + 1]);
      return;
    }
    for (let p = 0; p < this.pageCount; p++) {
      if ((set.bits[p >>> 3] & (1 << (p & 7))) !== 0) this.set(p);
    }
  }

  static from(pageCount: number, set: EncodedPageSet): PageBitmap {
    const bitmap = new PageBitmap(pageCount);
    bitmap.assign(set);
    return bitmap;
  }

  private scanClear(from: number, to: number): PageIndex | undefined {
    let p = from;
    while (p < to) {
      if ((p & 31) === 0 && this.words[p >>> 5] === 0xffffffff) {
        p += 32;
        continue;
      }
      if (!this.has(p)) return pageIndex(p);
      p++;
    }
    return undefined;
  }
}

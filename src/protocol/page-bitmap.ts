// One bit per guest page: which pages the destination holds, or which the
// source has sent. Also the wire encodings of that set for recovery (runs or
// raw bits, whichever is smaller). The bits and their count live in shared
// memory and change only through atomics, so a fault thread and the main
// thread can place (or send) pages into the same set.
import { pageIndex, type PageIndex } from './layout.ts';

export type EncodedPageSet =
  | { readonly encoding: 'runs'; readonly runs: readonly number[] }
  | { readonly encoding: 'bits'; readonly bits: Uint8Array };

export class PageBitmap {
  readonly pageCount: number;
  /** The shared words: the bits, then one word counting them. Pass to `attach` in another thread. */
  readonly buffer: SharedArrayBuffer;
  private readonly words: Uint32Array;
  private readonly counter: Int32Array;

  constructor(pageCount: number, buffer?: SharedArrayBuffer) {
    this.pageCount = pageCount;
    const wordCount = Math.ceil(pageCount / 32);
    this.buffer = buffer ?? new SharedArrayBuffer((wordCount + 1) * 4);
    if (this.buffer.byteLength !== (wordCount + 1) * 4) {
      throw new RangeError(`a bitmap of ${pageCount} pages needs ${(wordCount + 1) * 4} bytes, got ${this.buffer.byteLength}`);
    }
    this.words = new Uint32Array(this.buffer, 0, wordCount);
    this.counter = new Int32Array(this.buffer, wordCount * 4, 1);
  }

  /** The same set, as another thread sees it. */
  static attach(pageCount: number, buffer: SharedArrayBuffer): PageBitmap {
    return new PageBitmap(pageCount, buffer);
  }

  get count(): number {
    return Atomics.load(this.counter, 0);
  }

  get full(): boolean {
    return this.count === this.pageCount;
  }

  has(page: number): boolean {
    return (Atomics.load(this.words, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  /** Sets a bit; returns whether it was clear before. */
  set(page: number): boolean {
    const bit = 1 << (page & 31);
    if ((Atomics.or(this.words, page >>> 5, bit) & bit) !== 0) return false;
    Atomics.add(this.counter, 0, 1);
    return true;
  }

  /** Clears a bit; returns whether it was set before. */
  clear(page: number): boolean {
    const bit = 1 << (page & 31);
    if ((Atomics.and(this.words, page >>> 5, ~bit) & bit) === 0) return false;
    Atomics.sub(this.counter, 0, 1);
    return true;
  }

  /**
   * Sets [start, start + count) a word at a time: a frame marks up to 65,536
   * pages, and both page threads and the push mark every frame. Each word
   * changes atomically; the count follows by what was actually set.
   */
  setRange(start: number, count: number): void {
    const end = start + count;
    let set = 0;
    for (let p = start; p < end; p += bitsInWord(p, end)) {
      const mask = wordMask(p, end);
      set += popcount(~Atomics.or(this.words, p >>> 5, mask) & mask);
    }
    if (set > 0) Atomics.add(this.counter, 0, set);
  }

  /**
   * Clears [start, start + count) a word at a time: the switchover forgets
   * runs of up to a whole working set while the guest is stopped. Each word
   * changes atomically; the count follows by what was actually cleared.
   */
  clearRange(start: number, count: number): void {
    const end = start + count;
    let cleared = 0;
    for (let p = start; p < end; p += bitsInWord(p, end)) {
      const mask = wordMask(p, end);
      cleared += popcount(Atomics.and(this.words, p >>> 5, ~mask) & mask);
    }
    if (cleared > 0) Atomics.sub(this.counter, 0, cleared);
  }

  /** Not atomic as a whole: only while no other thread changes the set. */
  clearAll(): void {
    for (let w = 0; w < this.words.length; w++) Atomics.store(this.words, w, 0);
    Atomics.store(this.counter, 0, 0);
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
      if ((p & 31) === 0 && Atomics.load(this.words, p >>> 5) === 0) {
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
    const bytes = new Uint8Array(this.buffer, 0, Math.ceil(this.pageCount / 8));
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
      if ((p & 31) === 0 && Atomics.load(this.words, p >>> 5) === 0xffffffff) {
        p += 32;
        continue;
      }
      if (!this.has(p)) return pageIndex(p);
      p++;
    }
    return undefined;
  }
}

/** Pages from `p` to the end of its 32-page word or to `end`, whichever comes first. */
function bitsInWord(p: number, end: number): number {
  return Math.min(32 - (p & 31), end - p);
}

/** The bits of those pages in their word. */
function wordMask(p: number, end: number): number {
  const n = bitsInWord(p, end);
  return n === 32 ? 0xffff_ffff : ((1 << n) - 1) << (p & 31);
}

function popcount(word: number): number {
  let v = word - ((word >>> 1) & 0x5555_5555);
  v = (v & 0x3333_3333) + ((v >>> 2) & 0x3333_3333);
  return (((v + (v >>> 4)) & 0x0f0f_0f0f) * 0x0101_0101) >>> 24;
}

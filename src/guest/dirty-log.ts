// The dirty-page log: one byte per 4 KiB page of guest RAM, set by vCPU stores
// (inside the interpreter) and by device DMA, fetched-and-cleared by the
// migration source, as KVM's dirty log works. Bytes rather than bits so that a
// store never needs a read-modify-write that could lose a concurrent mark.
import { PAGE_SHIFT, pageCount, type PageIndex, type RamOffset } from './memory-map.ts';

export class DirtyLog {
  readonly bytes: Uint8Array;
  private readonly words: Int32Array;

  /** A log for `ramSize` bytes, or a view over an existing shared log. */
  constructor(ramSize: number, buffer?: SharedArrayBuffer) {
    const pages = pageCount(ramSize);
    this.buffer = buffer ?? new SharedArrayBuffer(Math.ceil(pages / 4) * 4);
    this.bytes = new Uint8Array(this.buffer, 0, pages);
    this.words = new Int32Array(this.buffer);
  }

  readonly buffer: SharedArrayBuffer;

  get pages(): number {
    return this.bytes.length;
  }

  markRange(offset: RamOffset, length: number): void {
    if (length <= 0) return;
    const first = offset >>> PAGE_SHIFT;
    const last = (offset + length - 1) >>> PAGE_SHIFT;
    for (let p = first; p <= last; p++) Atomics.store(this.bytes, p, 1);
  }

  markAll(): void {
    for (let p = 0; p < this.bytes.length; p++) Atomics.store(this.bytes, p, 1);
  }

  /** The pages marked since the last call, in ascending order, clearing them. */
  fetchAndClear(): PageIndex[] {
    const dirty: PageIndex[] = [];
    const runs = this.fetchAndClearRuns();
    for (let i = 0; i < runs.length; i += 2) {
      for (let p = runs[i]; p < runs[i] + runs[i + 1]; p++) dirty.push(p as PageIndex);
    }
    return dirty;
  }

  /**
   * The pages marked since the last call as ascending [start, length, ...]
   * runs, clearing them. A word at a time with Atomics.exchange: a store that
   * lands while we scan is either in this answer or stays marked for the
   * next, never lost. Runs, because the switchover's last fetch is on the
   * downtime's path: a guest writing all over a large working set leaves
   * ~130,000 pages marked, and listing them one by one, then merging them
   * into runs, took 12-20 ms of a 30 ms downtime.
   */
  fetchAndClearRuns(): number[] {
    const runs: number[] = [];
    let start = -1;
    let end = -1;
    for (let w = 0; w < this.words.length; w++) {
      if (Atomics.load(this.words, w) === 0) continue;
      const marks = Atomics.exchange(this.words, w, 0);
      for (let b = 0; b < 4; b++) {
        if (((marks >>> (b * 8)) & 0xff) === 0) continue;
        // Little-endian: byte b of the word is page 4w+b.
        const page = w * 4 + b;
        if (page === end) {
          end++;
          continue;
        }
        if (start >= 0) runs.push(start, end - start);
        start = page;
        end = page + 1;
      }
    }
    if (start >= 0) runs.push(start, end - start);
    return runs;
  }

  /** How many pages are marked (without clearing). */
  count(): number {
    let n = 0;
    for (let p = 0; p < this.bytes.length; p++) n += Atomics.load(this.bytes, p) !== 0 ? 1 : 0;
    return n;
  }
}

// Puts a run of pages on a channel as one frame, for the bulk push, precopy
// rounds and the request thread alike: zero pages travel as a marker, data
// pages go from RAM where they are on a page thread's socket (which writes a
// frame in parts), and are copied into a reused buffer for ws's. The run is
// marked sent and counted before the frame leaves, so neither the sent set
// nor the figures ever lag what the destination may already hold, whichever
// thread sent it.
//
// Buffers come in sizes of a power of two pages, each size with its own
// spares: the send window bounds bytes in flight, not frames, and once urgent
// requests have cut the push into short runs, a full-size buffer per frame
// took 88 of them (22 MiB, each page a first-touch fault) for 4 MiB in flight.
import { pageIndex } from '../protocol/layout.ts';
import type { PageBitmap } from '../protocol/page-bitmap.ts';
import { encodePagesHeader, encodePagesInto, encodeZeroRun, PAGE_FRAME_HEADER_BYTES } from '../protocol/page-frame.ts';
import type { PopulatedPages } from './populated-pages.ts';
import type { SendWindow } from './send-window.ts';
import type { TransferCounters } from './transfer-counters.ts';
import { ZeroPageCheck } from './zero-page.ts';

export interface FrameSenderOptions {
  /** Source guest RAM; read, never written. */
  readonly ram: Uint8Array;
  readonly pageSize: number;
  /** Pages the destination holds or has on the way. */
  readonly sent: PageBitmap;
  readonly counters: TransferCounters;
  /** Pages known to read as zero without reading them (private anonymous RAM only). */
  readonly populated?: PopulatedPages;
  /** Where `ram` is mapped in this process, when it is a mapping of our own: the addon scans it for zero pages. */
  readonly ramAddress?: number;
}

export class FrameSender {
  /** Per size class (buffers of 2^class pages), buffers whose frames were written: reused for the next data frames. */
  private readonly spareFrames: Buffer[][] = [];
  private readonly zeroPages: ZeroPageCheck;

  constructor(private readonly options: FrameSenderOptions) {
    this.zeroPages = new ZeroPageCheck(options.ram, options.pageSize, options.ramAddress);
  }

  isZero(page: number): boolean {
    return this.run(page, 1, 1) < 0;
  }

  /**
   * How many pages from `start` are, like it, zero (a negative count, at
   * most `maxZero`) or not (at most `maxData`); the caller keeps both inside
   * RAM. Pages never populated are zero without being read. Populated pages
   * are scanned up to `maxData` at a time, so a run of populated zero pages
   * (rare: the guest wrote zeros there) goes as markers of that length.
   */
  run(start: number, maxData: number, maxZero: number): number {
    const { populated } = this.options;
    if (!populated) return this.zeroPages.run(start, maxData, maxZero);
    let n = 1;
    if (!populated.mayHoldData(start)) {
      while (n < maxZero && !populated.mayHoldData(start + n)) n++;
      return -n;
    }
    while (n < maxData && populated.mayHoldData(start + n)) n++;
    return this.zeroPages.run(start, n, n);
  }

  /** `count` pages from `start`, all zero or all not (`zero` says which); returns the frame's bytes. */
  send(window: SendWindow, start: number, count: number, zero: boolean, precopy: boolean): number {
    if (zero) {
      const frame = encodeZeroRun(pageIndex(start), count, precopy);
      this.mark(start, count, zero, frame.length);
      window.send(frame);
      return frame.length;
    }
    const pages = this.pageBytes(start, count);
    if (window.writesParts) {
      // A page thread's socket writes the pages from guest RAM itself: only
      // postcopy sends on one, and the source's vCPUs are stopped then, so
      // the pages stay as they are until written.
      const header = encodePagesHeader(pageIndex(start), count, precopy);
      const bytes = header.length + pages.length;
      this.mark(start, count, zero, bytes);
      window.sendParts([header, pages], bytes);
      return bytes;
    }
    // Reused once written: a fresh buffer per frame made the garbage
    // collector stop this thread every few tens of milliseconds.
    const sizeClass = Math.ceil(Math.log2(count));
    const spares = (this.spareFrames[sizeClass] ??= []);
    const buffer = spares.pop() ?? Buffer.allocUnsafeSlow(PAGE_FRAME_HEADER_BYTES + 2 ** sizeClass * this.options.pageSize);
    const frame = encodePagesInto(buffer, pageIndex(start), count, pages, precopy);
    this.mark(start, count, zero, frame.length);
    window.send(frame, () => spares.push(buffer));
    return frame.length;
  }

  /** Marked and counted before the frame leaves: see the top of this file. */
  private mark(start: number, count: number, zero: boolean, bytes: number): void {
    const { sent, counters } = this.options;
    sent.setRange(start, count);
    counters.add('transferredBytes', bytes);
    counters.add(zero ? 'zeroPages' : 'normalPages', count);
  }

  private pageBytes(start: number, count: number): Uint8Array {
    const { ram, pageSize } = this.options;
    return ram.subarray(start * pageSize, (start + count) * pageSize);
  }
}

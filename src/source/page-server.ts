// The source's page server: serves guest RAM read-only to one destination.
// Requested pages go out at once on the urgent channel; every other page is
// pushed in the background on bulk, the scan restarting just after the last
// requested page (QEMU's bet on spatial locality); pages the destination
// holds are skipped, zero pages travel as markers, runs of consecutive pages
// share a frame, and neither channel's queue grows past its high-water mark.
import type { Logger } from '../log.ts';
import { pageIndex, type PageIndex } from '../protocol/layout.ts';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import { encodePagesInto, encodeZeroRun, PAGE_FRAME_HEADER_BYTES } from '../protocol/page-frame.ts';
import { MAX_PAGES_PER_FRAME, MAX_ZERO_RUN_PAGES } from '../protocol/version.ts';
import { SendWindow, type FrameSink } from './send-window.ts';
import { isZeroPage } from './zero-page.ts';

export interface PageServerOptions {
  /** Source guest RAM; read, never written. */
  readonly ram: Uint8Array;
  readonly pageSize: number;
  /**
   * Pages per data frame (default 4: 16 KiB). With 256 KiB frames fault
   * latency was about six times higher in bench:migration, at the same total
   * time: such frames straddle socket reads, so the receiver copies each into
   * a fresh buffer, and those copies and their garbage collections hold the
   * destination's event loop while urgent pages wait.
   */
  readonly maxPagesPerFrame?: number;
  /** Pages per zero-run marker (default 1024). */
  readonly maxZeroRunPages?: number;
  /** Bytes queued per channel before the pusher stops (default 4 MiB). */
  readonly highWaterMark?: number;
  /** Bulk frames built per event-loop turn, so requests are read in between (default 16). */
  readonly framesPerTurn?: number;
  readonly log: Logger;
}

export interface PageServerChannels {
  /** Carries precopy frames, in order with discards and machine state. */
  readonly control: FrameSink;
  readonly bulk: FrameSink;
  readonly urgent: FrameSink;
}

/** Figures in QEMU's query-migrate vocabulary. */
export interface PageServerFigures {
  transferredBytes: number;
  normalPages: number;
  zeroPages: number;
  /** Page-request messages served (postcopy-requests). */
  postcopyRequests: number;
  requestedPages: number;
  /** Requested pages already waiting in the urgent queue. */
  duplicateRequests: number;
  bulkPages: number;
  urgentPages: number;
  precopyPages: number;
  remainingPages: number;
}

interface Windows {
  readonly control: SendWindow;
  readonly bulk: SendWindow;
  readonly urgent: SendWindow;
}

export class PageServer {
  readonly pageCount: number;
  private readonly pageSize: number;
  /** Pages the destination holds or has on the way (cleared again by discards and recovery). */
  private readonly sent: PageBitmap;
  /** Requested pages not yet sent, in arrival order (a Set dedups them). */
  private readonly pendingUrgent = new Set<PageIndex>();
  private readonly maxPagesPerFrame: number;
  private readonly maxZeroRunPages: number;
  private readonly highWaterMark: number;
  private readonly framesPerTurn: number;
  private windows: Windows | undefined;
  private cursor = 0;
  private pushing = false;
  private pumpScheduled = false;
  /** Frame buffers whose frames were written: reused for the next data frames. */
  private readonly spareFrames: Buffer[] = [];
  private allSentHandler: (() => void) | undefined;
  readonly figures: PageServerFigures;

  constructor(private readonly options: PageServerOptions) {
    this.pageSize = options.pageSize;
    this.pageCount = Math.floor(options.ram.length / options.pageSize);
    this.sent = new PageBitmap(this.pageCount);
    this.maxPagesPerFrame = Math.min(options.maxPagesPerFrame ?? 4, MAX_PAGES_PER_FRAME);
    this.maxZeroRunPages = Math.min(options.maxZeroRunPages ?? 1024, MAX_ZERO_RUN_PAGES);
    this.highWaterMark = options.highWaterMark ?? 4 * 1024 * 1024;
    this.framesPerTurn = options.framesPerTurn ?? 16;
    this.figures = {
      transferredBytes: 0,
      normalPages: 0,
      zeroPages: 0,
      postcopyRequests: 0,
      requestedPages: 0,
      duplicateRequests: 0,
      bulkPages: 0,
      urgentPages: 0,
      precopyPages: 0,
      remainingPages: this.pageCount,
    };
  }

  /** Bytes queued on each channel and not yet written to the kernel. */
  get queuedBytes(): { bulk: number; urgent: number; control: number } {
    const w = this.windows;
    return { bulk: w?.bulk.queuedBytes ?? 0, urgent: w?.urgent.queuedBytes ?? 0, control: w?.control.queuedBytes ?? 0 };
  }

  /** Channels of a (re)established connection. */
  attach(channels: PageServerChannels): void {
    this.windows = {
      control: new SendWindow(channels.control, this.highWaterMark),
      bulk: new SendWindow(channels.bulk, this.highWaterMark),
      urgent: new SendWindow(channels.urgent, this.highWaterMark),
    };
    if (this.pushing) this.schedulePump();
  }

  /** The connection broke (postcopy-paused): stop sending and keep everything. */
  detach(): void {
    this.windows = undefined;
  }

  /**
   * Recovery: the destination's received-pages bitmap replaces what we
   * believed sent, so pages lost in flight go again and nothing else does.
   */
  markReceived(received: PageBitmap): void {
    this.sent.clearAll();
    for (let p = 0; p < this.pageCount; p++) if (received.has(p)) this.sent.set(p);
    this.figures.remainingPages = this.pageCount - this.sent.count;
    this.pendingUrgent.clear();
  }

  /** Pages sent earlier and dirtied since; the destination discards them, so they must go again. */
  forget(runs: readonly number[]): void {
    for (let i = 0; i < runs.length; i += 2) {
      for (let p = runs[i]; p < runs[i] + runs[i + 1]; p++) this.sent.clear(p);
    }
    this.figures.remainingPages = this.pageCount - this.sent.count;
  }

  /**
   * One precopy round: `pages` (ascending) on the control channel, so they
   * stay ordered with discards and machine state. Resolves once all are queued.
   */
  async sendPrecopy(pages: Iterable<number>): Promise<void> {
    let runStart = -1;
    let runLength = 0;
    for (const p of pages) {
      if (runLength > 0 && p === runStart + runLength && runLength < this.maxPagesPerFrame) {
        runLength++;
        continue;
      }
      if (runLength > 0) await this.sendPrecopyRun(runStart, runLength);
      runStart = p;
      runLength = 1;
    }
    if (runLength > 0) await this.sendPrecopyRun(runStart, runLength);
  }

  /** Postcopy: start the background push of every page not yet sent. */
  startPush(onAllSent?: () => void): void {
    this.pushing = true;
    this.allSentHandler = onAllSent;
    this.schedulePump();
  }

  stop(): void {
    this.pushing = false;
    this.windows = undefined;
  }

  /** A validated page-request: answered before any further bulk frame is built. */
  request(pages: readonly PageIndex[]): void {
    this.figures.postcopyRequests++;
    for (const p of pages) {
      this.figures.requestedPages++;
      if (this.pendingUrgent.has(p)) this.figures.duplicateRequests++;
      else this.pendingUrgent.add(p);
    }
    // Restart the background scan next to the fault: the guest is likely to touch neighbours.
    this.cursor = (pages[pages.length - 1] + 1) % this.pageCount;
    this.flushUrgent();
  }

  private flushUrgent(): void {
    const w = this.windows;
    if (!w) return;
    for (const p of this.pendingUrgent) {
      if (w.urgent.full) {
        w.urgent.whenWritable(() => this.flushUrgent());
        return;
      }
      this.pendingUrgent.delete(p);
      // Resent even if bulk already sent it: that copy may sit behind megabytes of bulk.
      this.sendRun(w.urgent, p, 1, this.isZero(p), false);
      this.figures.urgentPages++;
    }
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    const w = this.windows;
    if (!this.pushing || !w) return;
    for (let i = 0; i < this.framesPerTurn; i++) {
      if (w.bulk.full) {
        w.bulk.whenWritable(() => this.schedulePump());
        return;
      }
      const start = this.sent.nextClear(this.cursor);
      if (start === undefined) {
        this.pushing = false;
        this.allSentHandler?.();
        return;
      }
      const zero = this.isZero(start);
      const count = this.runFrom(start, zero, zero ? this.maxZeroRunPages : this.maxPagesPerFrame);
      this.sendRun(w.bulk, start, count, zero, false);
      this.figures.bulkPages += count;
      this.cursor = (start + count) % this.pageCount;
    }
    this.schedulePump();
  }

  private async sendPrecopyRun(start: number, count: number): Promise<void> {
    let p = start;
    while (p < start + count) {
      const w = this.windows;
      if (!w) throw new Error('precopy needs the channels attached');
      if (w.control.full) await w.control.writable();
      const zero = this.isZero(p);
      let n = 1;
      while (p + n < start + count && this.isZero(p + n) === zero) n++;
      this.sendRun(w.control, p, n, zero, true);
      this.figures.precopyPages += n;
      p += n;
    }
  }

  /** Unsent pages from `start` with the same zero-ness, at most `max`. */
  private runFrom(start: number, zero: boolean, max: number): number {
    let n = 1;
    while (n < max && start + n < this.pageCount && !this.sent.has(start + n) && this.isZero(start + n) === zero) n++;
    return n;
  }

  private sendRun(window: SendWindow, start: number, count: number, zero: boolean, precopy: boolean): void {
    let frame: Buffer;
    if (zero) {
      frame = encodeZeroRun(pageIndex(start), count, precopy);
      window.send(frame);
    } else {
      // Reused once written: a fresh buffer per frame made the garbage
      // collector stop this thread every few tens of milliseconds.
      const buffer = this.spareFrames.pop() ?? Buffer.allocUnsafeSlow(PAGE_FRAME_HEADER_BYTES + this.maxPagesPerFrame * this.pageSize);
      frame = encodePagesInto(buffer, pageIndex(start), count, this.pageBytes(start, count), precopy);
      window.send(frame, () => this.spareFrames.push(buffer));
    }
    this.sent.setRange(start, count);
    this.figures.transferredBytes += frame.length;
    if (zero) this.figures.zeroPages += count;
    else this.figures.normalPages += count;
    this.figures.remainingPages = this.pageCount - this.sent.count;
  }

  private pageBytes(start: number, count: number): Uint8Array {
    return this.options.ram.subarray(start * this.pageSize, (start + count) * this.pageSize);
  }

  private isZero(page: number): boolean {
    return isZeroPage(this.pageBytes(page, 1));
  }
}

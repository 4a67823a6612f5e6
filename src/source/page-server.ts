// The source's page server: serves guest RAM read-only to one destination.
// Every page is pushed in the background on bulk, the scan restarting just
// after the last requested page (QEMU's bet on spatial locality); requested
// pages go out on the urgent channel from the request thread
// (request-thread.ts), which shares this server's sent set and reports its
// counts through shared memory. Pages the destination holds are skipped, zero
// pages travel as markers (pages never populated are known to be zero
// without reading them: populated-pages.ts), runs of consecutive pages share
// a frame, and neither channel's queue grows past its high-water mark.
import type { Logger } from '../log.ts';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import { PAGE_FRAME_HEADER_BYTES } from '../protocol/page-frame.ts';
import { MAX_PAGES_PER_FRAME, MAX_ZERO_RUN_PAGES } from '../protocol/version.ts';
import { CursorHint } from './cursor-hint.ts';
import { FrameSender } from './frame-sender.ts';
import { PopulatedPages } from './populated-pages.ts';
import { SendWindow, type FrameSink } from './send-window.ts';
import { TokenBucket } from './token-bucket.ts';
import { sumCounts, TransferCounters, type TransferCounts } from './transfer-counters.ts';

export interface PageServerOptions {
  /** Source guest RAM; read, never written. */
  readonly ram: Uint8Array;
  /**
   * Host address of `ram` when it is a private anonymous mapping (a kernel
   * region): pages never populated there are zero pages without being read.
   */
  readonly ramAddress?: number;
  readonly pageSize: number;
  /**
   * Pages per bulk frame (default 64: 256 KiB). Urgent pages have their own
   * threads on both sides, so big bulk frames no longer hold them up; on a
   * 256 MiB guest 16 KiB frames took twice as long in all.
   */
  readonly maxPagesPerFrame?: number;
  /** Pages per zero-run marker (default 1024). */
  readonly maxZeroRunPages?: number;
  /** Bytes queued per channel before the pusher stops (default 4 MiB). */
  readonly highWaterMark?: number;
  /** Bulk frames built per event-loop turn, so control messages are read in between (default 16). */
  readonly framesPerTurn?: number;
  /** Bytes per second the postcopy push may send (QEMU's max-postcopy-bandwidth); unset: as fast as the link takes. Requested pages are never held back. */
  readonly maxPostcopyBandwidth?: number;
  /** Bytes per second for precopy rounds while the guest runs (QEMU's max-bandwidth); unset: unlimited. */
  readonly maxBandwidth?: number;
  readonly log: Logger;
}

export interface PageServerChannels {
  /** Carries precopy frames, in order with discards and machine state. */
  readonly control: FrameSink;
  readonly bulk: FrameSink;
}

/** Figures in QEMU's query-migrate vocabulary, the request thread's included. */
export interface PageServerFigures extends TransferCounts {
  remainingPages: number;
}

/** What the request thread needs to serve pages into this server's sent set and figures; structured-cloneable. */
export interface RequestShare {
  readonly pageSize: number;
  readonly pageCount: number;
  readonly highWaterMark: number;
  readonly sent: SharedArrayBuffer;
  readonly counters: SharedArrayBuffer;
  readonly cursor: SharedArrayBuffer;
}

interface Windows {
  readonly control: SendWindow;
  readonly bulk: SendWindow;
}

export class PageServer {
  readonly pageCount: number;
  /** Pages the destination holds or has on the way (cleared again by discards and recovery); the request thread sets bits too. */
  private readonly sent: PageBitmap;
  private readonly counters = new TransferCounters();
  private readonly requestCounters = new TransferCounters();
  private readonly cursorHint = new CursorHint();
  private readonly frames: FrameSender;
  private readonly populated: PopulatedPages | undefined;
  private readonly maxPagesPerFrame: number;
  private readonly maxZeroRunPages: number;
  private readonly highWaterMark: number;
  private readonly framesPerTurn: number;
  private windows: Windows | undefined;
  private cursor = 0;
  private pushing = false;
  private pumpScheduled = false;
  private pushBudget: TokenBucket | undefined;
  private precopyBudget: TokenBucket | undefined;
  private readonly largestFrame: number;
  private pushBudgetTimer: NodeJS.Timeout | undefined;
  private allSentHandler: (() => void) | undefined;
  readonly requestShare: RequestShare;

  constructor(options: PageServerOptions) {
    this.pageCount = Math.floor(options.ram.length / options.pageSize);
    this.sent = new PageBitmap(this.pageCount);
    this.maxPagesPerFrame = Math.min(options.maxPagesPerFrame ?? 64, MAX_PAGES_PER_FRAME);
    this.maxZeroRunPages = Math.min(options.maxZeroRunPages ?? 1024, MAX_ZERO_RUN_PAGES);
    this.highWaterMark = options.highWaterMark ?? 4 * 1024 * 1024;
    this.framesPerTurn = options.framesPerTurn ?? 16;
    this.largestFrame = PAGE_FRAME_HEADER_BYTES + this.maxPagesPerFrame * options.pageSize;
    this.setMaxPostcopyBandwidth(options.maxPostcopyBandwidth);
    this.setMaxBandwidth(options.maxBandwidth);
    this.populated = options.ramAddress === undefined ? undefined : PopulatedPages.open(options.ramAddress, this.pageCount, options.pageSize);
    this.frames = new FrameSender({
      ram: options.ram,
      pageSize: options.pageSize,
      sent: this.sent,
      counters: this.counters,
      populated: this.populated,
    });
    this.requestShare = {
      pageSize: options.pageSize,
      pageCount: this.pageCount,
      highWaterMark: this.highWaterMark,
      sent: this.sent.buffer,
      counters: this.requestCounters.buffer,
      cursor: this.cursorHint.buffer,
    };
  }

  get figures(): PageServerFigures {
    return { ...sumCounts(this.counters.read(), this.requestCounters.read()), remainingPages: this.pageCount - this.sent.count };
  }

  /** Pages sent in precopy frames so far: what precopy-sync asks the destination to hold. */
  get precopyPagesSent(): number {
    return this.counters.read().precopyPages;
  }

  /** Bytes queued on each channel and not yet written to the kernel. */
  get queuedBytes(): { bulk: number; control: number } {
    const w = this.windows;
    return { bulk: w?.bulk.queuedBytes ?? 0, control: w?.control.queuedBytes ?? 0 };
  }

  /** Channels of a (re)established connection. */
  attach(channels: PageServerChannels): void {
    this.windows = {
      control: new SendWindow(channels.control, this.highWaterMark),
      bulk: new SendWindow(channels.bulk, this.highWaterMark),
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
   * Safe to rewrite while the request thread runs: it sends only answers to
   * requests, and the destination asks nothing before the source resumes.
   */
  markReceived(received: PageBitmap): void {
    this.sent.clearAll();
    for (let p = 0; p < this.pageCount; p++) if (received.has(p)) this.sent.set(p);
  }

  /** Pages sent earlier and dirtied since; the destination discards them, so they must go again. */
  forget(runs: readonly number[]): void {
    for (let i = 0; i < runs.length; i += 2) this.sent.clearRange(runs[i], runs[i + 1]);
  }

  /**
   * One precopy round: `pages` (ascending) on the bulk channel; precopy-sync
   * orders them before discards and the machine state. At most the
   * max-bandwidth cap while the guest runs; `uncapped` for the stop-and-copy
   * round, as QEMU lifts its cap to complete. Resolves once all are queued.
   */
  async sendPrecopy(pages: Iterable<number>, uncapped = false): Promise<void> {
    // The guest runs: what the pagemap said before this round's dirty log was taken is stale.
    this.populated?.refresh();
    let runStart = -1;
    let runLength = 0;
    for (const p of pages) {
      if (runLength > 0 && p === runStart + runLength && runLength < this.maxPagesPerFrame) {
        runLength++;
        continue;
      }
      if (runLength > 0) await this.sendPrecopyRun(runStart, runLength, uncapped);
      runStart = p;
      runLength = 1;
    }
    if (runLength > 0) await this.sendPrecopyRun(runStart, runLength, uncapped);
  }

  /** Caps precopy rounds at this many bytes per second (QEMU's max-bandwidth); undefined lifts the cap. */
  setMaxBandwidth(bytesPerSecond: number | undefined): void {
    this.precopyBudget = bytesPerSecond === undefined ? undefined : new TokenBucket(bytesPerSecond, this.largestFrame);
  }

  /** Caps the push at this many bytes per second from now on; undefined lifts the cap. */
  setMaxPostcopyBandwidth(bytesPerSecond: number | undefined): void {
    this.pushBudget = bytesPerSecond === undefined ? undefined : new TokenBucket(bytesPerSecond, this.largestFrame);
    // A push waiting out the old cap re-reads the new one now.
    if (this.pushBudgetTimer === undefined) return;
    clearTimeout(this.pushBudgetTimer);
    this.pushBudgetTimer = undefined;
    this.schedulePump();
  }

  /** Postcopy: start the background push of every page not yet sent. */
  startPush(onAllSent?: () => void): void {
    // Written up to the switchover; never again once the push starts.
    this.populated?.refresh();
    this.pushing = true;
    this.allSentHandler = onAllSent;
    this.schedulePump();
  }

  stop(): void {
    this.pushing = false;
    clearTimeout(this.pushBudgetTimer);
    this.pushBudgetTimer = undefined;
    this.windows = undefined;
    this.populated?.close();
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
      const wait = this.pushBudget?.waitMs() ?? 0;
      if (wait > 0) {
        this.pushBudgetTimer ??= setTimeout(() => {
          this.pushBudgetTimer = undefined;
          this.schedulePump();
        }, wait);
        return;
      }
      this.cursor = this.cursorHint.take() ?? this.cursor;
      const start = this.sent.nextClear(this.cursor);
      if (start === undefined) {
        this.pushing = false;
        this.allSentHandler?.();
        return;
      }
      const zero = this.frames.isZero(start);
      const count = this.runFrom(start, zero, zero ? this.maxZeroRunPages : this.maxPagesPerFrame);
      this.counters.add('bulkPages', count);
      const bytes = this.frames.send(w.bulk, start, count, zero, false);
      this.pushBudget?.spend(bytes);
      this.cursor = (start + count) % this.pageCount;
    }
    this.schedulePump();
  }

  private async sendPrecopyRun(start: number, count: number, uncapped: boolean): Promise<void> {
    let p = start;
    while (p < start + count) {
      const budget = uncapped ? undefined : this.precopyBudget;
      const wait = budget?.waitMs() ?? 0;
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const w = this.windows;
      if (!w) throw new Error('precopy needs the channels attached');
      if (w.bulk.full) await w.bulk.writable();
      const zero = this.frames.isZero(p);
      let n = 1;
      while (p + n < start + count && this.frames.isZero(p + n) === zero) n++;
      this.counters.add('precopyPages', n);
      const bytes = this.frames.send(w.bulk, p, n, zero, true);
      budget?.spend(bytes);
      p += n;
    }
  }

  /** Unsent pages from `start` with the same zero-ness, at most `max`. */
  private runFrom(start: number, zero: boolean, max: number): number {
    let n = 1;
    while (n < max && start + n < this.pageCount && !this.sent.has(start + n) && this.frames.isZero(start + n) === zero) n++;
    return n;
  }
}

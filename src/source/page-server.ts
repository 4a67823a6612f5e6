// The source's page server: serves guest RAM read-only to one destination.
// Precopy rounds go on bulk from here; in postcopy the background push
// (bulk-push.ts) runs in the push thread (push-worker.ts) and requested pages
// go out on the urgent channel from the request thread (request-worker.ts).
// Both share this server's sent set and report their counts through shared
// memory. Pages the destination holds are skipped, zero pages travel as
// markers (pages never populated are known to be zero without reading them:
// populated-pages.ts), runs of consecutive pages share a frame, and neither
// channel's queue grows past its high-water mark.
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
  /** Bulk frames the push thread builds per turn, so messages from the main thread are read in between (default 16). */
  readonly framesPerTurn?: number;
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

/** What the page threads need to serve pages into this server's sent set and figures; structured-cloneable. */
export interface PageShare {
  readonly pageSize: number;
  readonly pageCount: number;
  readonly highWaterMark: number;
  readonly maxPagesPerFrame: number;
  readonly maxZeroRunPages: number;
  readonly framesPerTurn: number;
  readonly sent: SharedArrayBuffer;
  /** The request thread's counts, and the push thread's. */
  readonly requestCounters: SharedArrayBuffer;
  readonly pushCounters: SharedArrayBuffer;
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
  private readonly pushCounters = new TransferCounters();
  private readonly frames: FrameSender;
  private readonly populated: PopulatedPages | undefined;
  private readonly maxPagesPerFrame: number;
  private readonly highWaterMark: number;
  private windows: Windows | undefined;
  private precopyBudget: TokenBucket | undefined;
  private readonly largestFrame: number;
  readonly share: PageShare;

  constructor(options: PageServerOptions) {
    this.pageCount = Math.floor(options.ram.length / options.pageSize);
    this.sent = new PageBitmap(this.pageCount);
    this.maxPagesPerFrame = Math.min(options.maxPagesPerFrame ?? 64, MAX_PAGES_PER_FRAME);
    const maxZeroRunPages = Math.min(options.maxZeroRunPages ?? 1024, MAX_ZERO_RUN_PAGES);
    this.highWaterMark = options.highWaterMark ?? 4 * 1024 * 1024;
    const framesPerTurn = options.framesPerTurn ?? 16;
    this.largestFrame = PAGE_FRAME_HEADER_BYTES + this.maxPagesPerFrame * options.pageSize;
    this.setMaxBandwidth(options.maxBandwidth);
    this.populated = options.ramAddress === undefined ? undefined : PopulatedPages.open(options.ramAddress, this.pageCount, options.pageSize);
    this.frames = new FrameSender({
      ram: options.ram,
      pageSize: options.pageSize,
      sent: this.sent,
      counters: this.counters,
      populated: this.populated,
      ramAddress: options.ramAddress,
    });
    this.share = {
      pageSize: options.pageSize,
      pageCount: this.pageCount,
      highWaterMark: this.highWaterMark,
      maxPagesPerFrame: this.maxPagesPerFrame,
      maxZeroRunPages,
      framesPerTurn,
      sent: this.sent.buffer,
      requestCounters: this.requestCounters.buffer,
      pushCounters: this.pushCounters.buffer,
      cursor: new CursorHint().buffer,
    };
  }

  get figures(): PageServerFigures {
    const counts = sumCounts(sumCounts(this.counters.read(), this.requestCounters.read()), this.pushCounters.read());
    return { ...counts, remainingPages: this.pageCount - this.sent.count };
  }

  /** Pages sent in precopy frames so far: what precopy-sync asks the destination to hold. */
  get precopyPagesSent(): number {
    return this.counters.read().precopyPages;
  }

  /** Channels of a (re)established connection. */
  attach(channels: PageServerChannels): void {
    this.windows = {
      control: new SendWindow(channels.control, this.highWaterMark),
      bulk: new SendWindow(channels.bulk, this.highWaterMark),
    };
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

  stop(): void {
    this.windows = undefined;
    this.populated?.close();
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
      const left = start + count - p;
      const run = this.frames.run(p, left, left);
      const zero = run < 0;
      const n = Math.abs(run);
      this.counters.add('precopyPages', n);
      const bytes = this.frames.send(w.bulk, p, n, zero, true);
      budget?.spend(bytes);
      p += n;
    }
  }
}

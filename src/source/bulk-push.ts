// Postcopy's background push: every page the destination does not hold yet,
// in frames on the bulk channel, the scan restarting just after the last
// requested page (QEMU's bet on spatial locality). It runs in the source's
// push thread (push-worker.ts, push-service.ts), rehearsal included.
// Pages the destination holds are skipped, zero pages travel as markers,
// runs of consecutive pages share a frame, the channel's queue never grows
// past its high-water mark, and max-postcopy-bandwidth caps the rate.
import type { PageBitmap } from '../protocol/page-bitmap.ts';
import type { CursorHint } from './cursor-hint.ts';
import type { FrameSender } from './frame-sender.ts';
import type { SendWindow } from './send-window.ts';
import { TokenBucket } from './token-bucket.ts';
import type { TransferCounters } from './transfer-counters.ts';

export interface BulkPushOptions {
  readonly frames: FrameSender;
  /** Pages the destination holds or has on the way; shared with the request thread. */
  readonly sent: PageBitmap;
  readonly cursor: CursorHint;
  readonly counters: TransferCounters;
  readonly pageCount: number;
  readonly maxPagesPerFrame: number;
  readonly maxZeroRunPages: number;
  /** The largest frame: the token bucket's burst. */
  readonly largestFrame: number;
  /** Frames built per event-loop turn, so messages are read in between. */
  readonly framesPerTurn: number;
  /** Bytes per second (QEMU's max-postcopy-bandwidth); unset: as fast as the link takes. */
  readonly maxPostcopyBandwidth?: number;
  /** Runs the next pump after `delayMs` (0: the next turn); setImmediate and setTimeout when unset. */
  readonly later?: (task: () => void, delayMs: number) => void;
}

function onEventLoop(task: () => void, delayMs: number): void {
  if (delayMs > 0) setTimeout(task, delayMs);
  else setImmediate(task);
}

export class BulkPush {
  private window: SendWindow | undefined;
  private cursor = 0;
  private pushing = false;
  private pumpScheduled = false;
  private budget: TokenBucket | undefined;
  /** A pump waits out the cap; a new cap pumps again at once, and the old wait's pump finds nothing to do or goes on. */
  private awaitingBudget = false;
  private allSentHandler: (() => void) | undefined;
  private readonly later: (task: () => void, delayMs: number) => void;

  constructor(private readonly options: BulkPushOptions) {
    this.later = options.later ?? onEventLoop;
    this.setMaxPostcopyBandwidth(options.maxPostcopyBandwidth);
  }

  /** The bulk channel of a (re)established connection; the push goes on on it at start() or resume(). */
  attach(window: SendWindow): void {
    this.window = window;
  }

  /** The connection broke: stop sending and keep everything. */
  detach(): void {
    this.window = undefined;
  }

  /** Starts pushing every page not yet sent; `onAllSent` once none is left. */
  start(onAllSent?: () => void): void {
    this.pushing = true;
    this.allSentHandler = onAllSent;
    this.schedulePump();
  }

  /** Goes on after a recovery, on the channel attached since, from the sent set as it is now. */
  resume(): void {
    if (this.pushing) this.schedulePump();
  }

  /** Caps the push at this many bytes per second from now on; undefined lifts the cap. */
  setMaxPostcopyBandwidth(bytesPerSecond: number | undefined): void {
    this.budget = bytesPerSecond === undefined ? undefined : new TokenBucket(bytesPerSecond, this.options.largestFrame);
    // A push waiting out the old cap re-reads the new one now.
    if (!this.awaitingBudget) return;
    this.awaitingBudget = false;
    this.schedulePump();
  }

  stop(): void {
    this.pushing = false;
    this.window = undefined;
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    this.later(this.pumpNow, 0);
  }

  private readonly pumpNow = (): void => {
    this.pumpScheduled = false;
    this.pump();
  };

  private pump(): void {
    const w = this.window;
    if (!this.pushing || !w) return;
    const { frames, sent, cursor, counters, pageCount, maxPagesPerFrame, maxZeroRunPages, framesPerTurn } = this.options;
    for (let i = 0; i < framesPerTurn; i++) {
      if (w.full) {
        w.whenWritable(() => this.schedulePump());
        return;
      }
      const wait = this.budget?.waitMs() ?? 0;
      if (wait > 0) {
        if (this.awaitingBudget) return;
        this.awaitingBudget = true;
        this.later(() => {
          if (!this.awaitingBudget) return;
          this.awaitingBudget = false;
          this.schedulePump();
        }, wait);
        return;
      }
      this.cursor = cursor.take() ?? this.cursor;
      const start = sent.nextClear(this.cursor);
      if (start === undefined) {
        this.pushing = false;
        this.allSentHandler?.();
        return;
      }
      let unsent = sent.clearRunLength(start, maxPagesPerFrame);
      let run = frames.run(start, unsent, unsent);
      if (run === -maxPagesPerFrame) {
        // Zero runs go on past a data frame's length: only then is the sent set read further.
        unsent = sent.clearRunLength(start, maxZeroRunPages);
        run = frames.run(start, maxPagesPerFrame, unsent);
      }
      const zero = run < 0;
      const count = Math.abs(run);
      counters.add('bulkPages', count);
      const bytes = frames.send(w, start, count, zero, false);
      this.budget?.spend(bytes);
      this.cursor = (start + count) % pageCount;
    }
    this.schedulePump();
  }
}

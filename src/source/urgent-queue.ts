// Requested pages not yet sent, answered on the urgent channel as fast as its
// send window allows. A page asked for again while it waits goes once; a page
// goes even if the bulk push already sent it, since that copy may sit behind
// megabytes of bulk frames.
import type { PageIndex } from '../protocol/layout.ts';
import type { CursorHint } from './cursor-hint.ts';
import type { FrameSender } from './frame-sender.ts';
import { SendWindow, type FrameSink } from './send-window.ts';
import type { TransferCounters } from './transfer-counters.ts';

export interface UrgentQueueOptions {
  readonly frames: FrameSender;
  readonly counters: TransferCounters;
  readonly cursor: CursorHint;
  readonly pageCount: number;
  /** Bytes queued on the channel before answers wait. */
  readonly highWaterMark: number;
}

export class UrgentQueue {
  /** In arrival order (a Set dedups them). */
  private readonly pending = new Set<PageIndex>();
  private window: SendWindow | undefined;

  constructor(private readonly options: UrgentQueueOptions) {}

  /**
   * The urgent channel of a new connection. Requests of the one before are
   * dropped: after a reconnect the destination asks again for every page it
   * still waits on, and an answer sent before it resumed would be refused.
   */
  attach(sink: FrameSink): void {
    this.pending.clear();
    this.window = new SendWindow(sink, this.options.highWaterMark);
  }

  /** The channel closed: nothing to send on until the next attach. */
  detach(): void {
    this.window = undefined;
  }

  /** A validated page-request, served in postcopy-active. */
  request(pages: readonly PageIndex[]): void {
    const { counters, cursor, pageCount } = this.options;
    counters.add('postcopyRequests');
    for (const p of pages) {
      counters.add('requestedPages');
      if (this.pending.has(p)) counters.add('duplicateRequests');
      else this.pending.add(p);
    }
    cursor.set((pages[pages.length - 1] + 1) % pageCount);
    this.flush();
  }

  private flush(): void {
    const w = this.window;
    if (!w) return;
    for (const p of this.pending) {
      if (w.full) {
        w.whenWritable(() => this.flush());
        return;
      }
      this.pending.delete(p);
      this.options.counters.add('urgentPages');
      this.options.frames.send(w, p, 1, this.options.frames.isZero(p), false);
    }
  }
}

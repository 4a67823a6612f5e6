// The bounded queue between the bulk socket and the placer. Bulk frames are
// placed a few per event-loop turn so urgent pages and fault events are read
// in between; when the queue is full the bulk socket is paused, TCP fills up
// and the source's send window closes: no unbounded queue anywhere.
import type { PageFrame } from '../protocol/messages.ts';

export interface PausableSource {
  pause(): void;
  resume(): void;
}

function sizeOf(frame: PageFrame): number {
  return frame.type === 'pages' ? frame.payload.length : 0;
}

const FRAMES_PER_TURN = 2;

export class BulkIntake {
  private readonly queue: PageFrame[] = [];
  private scheduled = false;
  private paused = false;
  private bytes = 0;
  /** Largest queue seen, in frames and in page bytes, for tests and figures. */
  highestQueued = 0;
  highestQueuedBytes = 0;

  constructor(
    private readonly source: PausableSource,
    private readonly place: (frame: PageFrame) => void,
    private readonly limit = 16,
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  // ws still delivers the frames of the socket read it is parsing after
  // pause(), so the queue may pass `limit` by one socket read (64 KiB) —
  // many frames if they are zero-run markers, but never more bytes.
  push(frame: PageFrame): void {
    this.queue.push(frame);
    this.bytes += sizeOf(frame);
    this.highestQueued = Math.max(this.highestQueued, this.queue.length);
    this.highestQueuedBytes = Math.max(this.highestQueuedBytes, this.bytes);
    if (this.queue.length >= this.limit && !this.paused) {
      this.paused = true;
      this.source.pause();
    }
    this.schedule();
  }

  /** Drops what is queued (the connection broke; recovery resends it). */
  clear(): void {
    this.queue.length = 0;
    this.bytes = 0;
    this.paused = false;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  private drain(): void {
    this.scheduled = false;
    for (let i = 0; i < FRAMES_PER_TURN && this.queue.length > 0; i++) {
      const frame = this.queue.shift() as PageFrame;
      this.bytes -= sizeOf(frame);
      this.place(frame);
    }
    if (this.paused && this.queue.length <= this.limit / 2) {
      this.paused = false;
      this.source.resume();
    }
    if (this.queue.length > 0) this.schedule();
  }
}

// Flow control for one outgoing channel: counts the bytes handed to ws whose
// send callback has not fired yet, and says when to stop and when to go on.
//
// Why send callbacks and not the socket's 'drain': ws's WebSocket has no
// 'drain' event, and ws._socket is private. A send callback fires when the
// frame was written to the kernel, so the bytes counted here are what
// ws.bufferedAmount reports, through public API, frame by frame; the pusher
// resumes at the low-water mark instead of waiting for an empty buffer.
export interface FrameSink {
  sendBytes(bytes: Uint8Array, cb?: (err?: Error) => void): void;
  sendParts(parts: readonly Uint8Array[], cb?: (err?: Error) => void): void;
  /** Whether sendParts leaves its parts where they are (a page thread's socket) rather than copying them. */
  readonly writesParts: boolean;
  readonly open: boolean;
}

export class SendWindow {
  private inFlight = 0;
  private waiter: (() => void) | undefined;

  constructor(
    private readonly sink: FrameSink,
    readonly highWaterMark: number,
    private readonly lowWaterMark = highWaterMark / 2,
  ) {}

  get queuedBytes(): number {
    return this.inFlight;
  }

  get full(): boolean {
    return this.inFlight >= this.highWaterMark;
  }

  get open(): boolean {
    return this.sink.open;
  }

  get writesParts(): boolean {
    return this.sink.writesParts;
  }

  /** `written` runs once the frame reached the kernel (or the channel failed): its buffer may then be reused. */
  send(frame: Uint8Array, written?: () => void): void {
    this.inFlight += frame.length;
    this.sink.sendBytes(frame, () => this.sent(frame.length, written));
  }

  /** A frame of `bytes` in all, in `parts` that stay unchanged until it is written. */
  sendParts(parts: readonly Uint8Array[], bytes: number): void {
    this.inFlight += bytes;
    this.sink.sendParts(parts, () => this.sent(bytes));
  }

  private sent(bytes: number, written?: () => void): void {
    written?.();
    this.inFlight -= bytes;
    if (this.waiter && this.inFlight <= this.lowWaterMark) {
      const w = this.waiter;
      this.waiter = undefined;
      w();
    }
  }

  /** Calls `resume` once the queue fell to the low-water mark (a closed sink never calls it). */
  whenWritable(resume: () => void): void {
    if (this.inFlight <= this.lowWaterMark) queueMicrotask(resume);
    else this.waiter = resume;
  }

  /** Awaitable form of whenWritable for the precopy sender. */
  writable(): Promise<void> {
    return new Promise((resolve) => this.whenWritable(resolve));
  }
}

// Where the background push should go on scanning: just after the last
// requested page, QEMU's bet that the guest touches its neighbours next. The
// request thread leaves the hint, the page server's pump takes it.
const NONE = -1;

export class CursorHint {
  /** Pass to `attach` in another thread. */
  readonly buffer: SharedArrayBuffer;
  private readonly slot: Int32Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
    this.slot = new Int32Array(this.buffer, 0, 1);
    if (!buffer) Atomics.store(this.slot, 0, NONE);
  }

  static attach(buffer: SharedArrayBuffer): CursorHint {
    return new CursorHint(buffer);
  }

  set(page: number): void {
    Atomics.store(this.slot, 0, page);
  }

  /** The page left since the last take, if any. */
  take(): number | undefined {
    const page = Atomics.exchange(this.slot, 0, NONE);
    return page === NONE ? undefined : page;
  }
}

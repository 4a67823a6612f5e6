// A byte budget that refills at a fixed rate: what QEMU's
// max-postcopy-bandwidth does to the background push. On a host with few
// cores the push competes with the vCPUs and the fault path for CPU as
// well as for the link; capping it trades a longer migration (and more
// faults) for faster ones.

/** Credit saved while idle, in ms of the rate: enough to ride over timer jitter, too little for a burst that defeats the cap. */
const BURST_MS = 20;

export class TokenBucket {
  private tokens: number;
  private readonly capacity: number;
  private refilledAt: number;

  /**
   * `bytesPerSecond` > 0; `minBurst` is the largest single spend (one frame),
   * so that a spend never has to wait for more credit than the bucket holds.
   */
  constructor(
    readonly bytesPerSecond: number,
    minBurst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`a token bucket needs a positive rate (got ${bytesPerSecond})`);
    this.capacity = Math.max(minBurst, (bytesPerSecond * BURST_MS) / 1000);
    this.tokens = this.capacity;
    this.refilledAt = this.now();
  }

  /** Milliseconds until the budget is paid back: 0 when bytes may be sent now. */
  waitMs(): number {
    this.refill();
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.bytesPerSecond;
  }

  /** Records bytes sent; the budget may go negative by one spend, which the wait then pays back. */
  spend(bytes: number): void {
    this.refill();
    this.tokens -= bytes;
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.refilledAt) * this.bytesPerSecond) / 1000);
    this.refilledAt = now;
  }
}

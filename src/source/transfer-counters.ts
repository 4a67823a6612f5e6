// The page server's counts as slots of a Float64Array, so the request thread
// can count into shared memory that the main thread reads for query-migrate.
// Each set of counters has one writing thread. A reader may see a count one
// update behind; JavaScript allows a non-atomic Float64 access to tear, but
// V8 makes aligned 8-byte accesses on the 64-bit targets Node runs on, and
// these counts are only ever reported, never acted on.

/** Counts in QEMU's query-migrate vocabulary. */
export interface TransferCounts {
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
}

const SLOT: Record<keyof TransferCounts, number> = {
  transferredBytes: 0,
  normalPages: 1,
  zeroPages: 2,
  postcopyRequests: 3,
  requestedPages: 4,
  duplicateRequests: 5,
  bulkPages: 6,
  urgentPages: 7,
  precopyPages: 8,
};

const NAMES = Object.keys(SLOT) as (keyof TransferCounts)[];

export class TransferCounters {
  /** Pass to `attach` in another thread. */
  readonly buffer: SharedArrayBuffer;
  private readonly slots: Float64Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(NAMES.length * Float64Array.BYTES_PER_ELEMENT);
    this.slots = new Float64Array(this.buffer, 0, NAMES.length);
  }

  /** The same counters, as another thread sees them. */
  static attach(buffer: SharedArrayBuffer): TransferCounters {
    return new TransferCounters(buffer);
  }

  add(name: keyof TransferCounts, n = 1): void {
    this.slots[SLOT[name]] += n;
  }

  read(): TransferCounts {
    return Object.fromEntries(NAMES.map((name) => [name, this.slots[SLOT[name]]])) as unknown as TransferCounts;
  }
}

/** Both threads' counts together. */
export function sumCounts(a: TransferCounts, b: TransferCounts): TransferCounts {
  return Object.fromEntries(NAMES.map((name) => [name, a[name] + b[name]])) as unknown as TransferCounts;
}

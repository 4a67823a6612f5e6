// What the destination's page engine needs from src/uffd, as structural types,
// so the engine runs against a real Userfaultfd (kernel or sim) or a test fake.
export interface PlacementUffd {
  /** UFFDIO_COPY of src to the absolute address; EEXIST is handled inside (wake, report). */
  copy(address: number, src: Uint8Array, options?: { dontWake?: boolean }): unknown;
  zeropage(address: number, length: number, options?: { dontWake?: boolean }): unknown;
  wake(address: number, length: number): void;
  unregister(address: number, length: number): void;
}

/** Guest RAM as the destination's main thread may touch it. */
export interface PlacementRegion {
  readonly address: number;
  readonly length: number;
  /** A view of RAM. Only ever touch pages the received bitmap says are present. */
  bytes(): Uint8Array;
  /** MADV_DONTNEED: the pages are dropped and fault again. */
  discard(offset: number, length: number): void;
}

export interface FaultEvent {
  /** Absolute faulting address (any byte of the page). */
  readonly address: number;
  readonly write?: boolean;
  readonly threadId?: number;
}

// What the destination's page engine needs from src/uffd's Userfaultfd, as
// structural types: the engine runs against either backend or a test fake.
export interface PlacementUffd {
  /** UFFDIO_COPY of src to the absolute address; EEXIST is handled inside (skipped, woken, reported). */
  copy(address: number, src: Uint8Array): { readonly bytes: number; readonly existed: number };
  zeropage(address: number, length: number): { readonly bytes: number; readonly existed: number };
  wake(address: number, length: number): void;
  unregister(address: number, length: number): void;
}

/** The fault stream: one batch of events per wake-up of the fd. */
export interface FaultSource {
  on(event: 'events', listener: (batch: readonly { readonly type: string }[]) => void): unknown;
  off(event: 'events', listener: (batch: readonly { readonly type: string }[]) => void): unknown;
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
  readonly type: 'pagefault';
  /** Absolute faulting address (any byte of the page). */
  readonly address: number;
  readonly write?: boolean;
  /** Write-protect faults are not missing pages; the engine leaves them alone. */
  readonly wp?: boolean;
  readonly threadId?: number | null;
}

// What the destination's page engine needs from src/uffd's Userfaultfd, as
// structural types: the engine runs against either backend or a test fake.
import type { GuestRegion } from '../uffd/region.ts';
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

/** Guest RAM as the page engine places into it. */
export interface PlacementRegion {
  readonly address: number;
  readonly length: number;
  /** Copies src over RAM at offset. Only pages the received bitmap says are present: a missing one would not fault. */
  write(offset: number, src: Uint8Array): void;
  /** Zeroes RAM at offset, under the same rule as write(). */
  zero(offset: number, length: number): void;
  /** MADV_DONTNEED: the pages are dropped and fault again. */
  discard(offset: number, length: number): void;
}

/** A main-thread guest region, written through the view it keeps anyway. */
export function placementRegion(region: GuestRegion): PlacementRegion {
  return {
    address: region.address,
    length: region.length,
    write: (offset, src) => region.bytes().set(src, offset),
    zero: (offset, length) => region.bytes().fill(0, offset, offset + length),
    discard: (offset, length) => region.discard(offset, length),
  };
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

// The one userfaultfd interface every backend implements (kernel.ts, sim.ts).
// Addresses are absolute (region.address + offset) on every backend.
import type { EventEmitter } from 'node:events';
import type { Backend } from './region.ts';

/** How the userfaultfd was obtained, in the order `auto` tries them. */
export type AccessPath = 'dev' | 'syscall' | 'syscall-user-mode-only' | 'sim';
export const ACCESS_PATHS: readonly AccessPath[] = ['dev', 'syscall', 'syscall-user-mode-only', 'sim'];

export interface UffdFeatures {
  /** Page faults carry the faulting thread's id. */
  readonly threadId: boolean;
  /** Ranges may be registered for write-protect faults. */
  readonly writeProtect: boolean;
  /** MADV_DONTNEED / munmap on a registered range are reported (remove / unmap events). */
  readonly remove: boolean;
  readonly unmap: boolean;
  /** The UFFD_FEATURE_* bits enabled on this fd (0 for sim). */
  readonly bits: number;
  /** Every UFFD_FEATURE_* bit the kernel offers (0 for sim). */
  readonly available: number;
}

export interface PagefaultEvent {
  readonly type: 'pagefault';
  /** Page-aligned absolute address of the fault. */
  readonly address: number;
  readonly write: boolean;
  /** A write to a write-protected page (not a missing one). */
  readonly wp: boolean;
  /** The kernel thread id (kernel) or worker threadId (sim); null when not offered. */
  readonly threadId: number | null;
}

export interface RangeEvent {
  readonly type: 'remove' | 'unmap';
  readonly start: number;
  readonly end: number;
}

export interface RemapEvent {
  readonly type: 'remap';
  readonly from: number;
  readonly to: number;
  readonly length: number;
}

export type UffdEvent = PagefaultEvent | RangeEvent | RemapEvent;

export interface RegisterOptions {
  /** Missing-page faults (default true). */
  missing?: boolean;
  /** Write-protect faults; needs features.writeProtect. */
  writeProtect?: boolean;
}

export interface Registration {
  readonly address: number;
  readonly length: number;
  /** Placement ioctls usable on the range, e.g. ['copy', 'zeropage', 'wake']. */
  readonly ioctls: readonly string[];
}

export interface PlaceOptions {
  /** Wake threads asleep on the range (default true); false = DONTWAKE, WAKE later. */
  wake?: boolean;
  /** Map the pages write-protected (UFFDIO_COPY_MODE_WP); needs a WP registration. */
  writeProtect?: boolean;
}

export interface PlaceResult {
  /** Bytes placed by this call. */
  readonly bytes: number;
  /** Bytes that were already present (EEXIST: another placement won; they were woken). */
  readonly existed: number;
}

export interface UffdEventMap {
  /** One batch per wake-up of the fd, in the order the kernel queued them. */
  events: [batch: readonly UffdEvent[]];
  error: [error: Error];
}

export interface Userfaultfd extends EventEmitter<UffdEventMap> {
  readonly path: AccessPath;
  readonly backend: Backend;
  readonly features: UffdFeatures;
  /** Whether a fault taken inside a syscall (write(2) from guest RAM) is delivered. */
  readonly handlesKernelFaults: boolean;
  readonly closed: boolean;
  register(address: number, length: number, options?: RegisterOptions): Registration;
  unregister(address: number, length: number): void;
  copy(address: number, source: Uint8Array, options?: PlaceOptions): PlaceResult;
  zeropage(address: number, length: number, options?: PlaceOptions): PlaceResult;
  wake(address: number, length: number): void;
  writeProtect(address: number, length: number, protect: boolean, options?: { wake?: boolean }): void;
  /** Let the process exit while this fd is open (kernel: unref the poll handle). */
  unref(): void;
  ref(): void;
  /** Idempotent. Threads asleep on pages still missing are woken and their region marked aborted. */
  close(): void;
}

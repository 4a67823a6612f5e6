// Guest RAM regions, created on the main thread and handed to vCPU workers.
//
//   type Backend = 'kernel' | 'sim'
//   type RegionHandle =                       // structured-cloneable: postMessage / workerData
//     | { kind: 'mmap'; address; length; status: SharedArrayBuffer }
//     | { kind: 'sim'; address; length; buffer, present, control, status: SharedArrayBuffer }
//   interface GuestRegion {
//     address: number   // host virtual address (kernel) or a unique fake base (sim), page aligned
//     length: number    // bytes, a multiple of 4096
//     backend; handle
//     bytes(): Uint8Array                    // main-thread view; only read pages known present
//     discard(offset, length): void          // MADV_DONTNEED / clear present bits: pages fault again
//     release(): void                        // munmap; idempotent
//   }
//   allocateRegion(length, backend): GuestRegion
//
// Copy/zeropage/wake take absolute addresses (region.address + offset) on both
// backends, so destination code never asks which backend it runs on.
import { loadNative } from './native.ts';
import { UffdRangeError } from './errors.ts';
import { PAGE_SIZE, bitmapWords, checkRange, clearBit, hasBit, hex, isPageAligned, pageIndex, setBit } from './pages.ts';
import { STATUS_BYTES, controlBytes } from './sim-layout.ts';

export type Backend = 'kernel' | 'sim';

export interface MmapRegionHandle {
  readonly kind: 'mmap';
  readonly address: number;
  readonly length: number;
  /** Int32 words, see sim-layout.ts: STATE says whether the serving userfaultfd aborted. */
  readonly status: SharedArrayBuffer;
}

export interface SimRegionHandle {
  readonly kind: 'sim';
  readonly address: number;
  readonly length: number;
  readonly buffer: SharedArrayBuffer;
  readonly present: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  readonly status: SharedArrayBuffer;
}

export type RegionHandle = MmapRegionHandle | SimRegionHandle;

export interface GuestRegion {
  readonly address: number;
  readonly length: number;
  readonly backend: Backend;
  readonly handle: RegionHandle;
  bytes(): Uint8Array;
  discard(offset: number, length: number): void;
  release(): void;
  readonly released: boolean;
}

// Regions alive in this thread, so a userfaultfd given an absolute address can
// find the region (its status word, and for sim its shared memory).
const live = new Set<GuestRegion>();

/** The live region holding all of [address, address+length), if any. */
export function regionContaining(address: number, length: number): GuestRegion | undefined {
  for (const r of live) {
    if (address >= r.address && address + length <= r.address + r.length) return r;
  }
  return undefined;
}

function checkSubrange(region: GuestRegion, offset: number, length: number, doing: string): void {
  if (!isPageAligned(offset) || !isPageAligned(length) || length === 0 || offset + length > region.length) {
    throw new UffdRangeError(`${doing}: [${hex(offset)}, +${length}) is not a page-aligned part of the ${region.length}-byte region`, {
      errno: 'EINVAL',
    });
  }
}

class MmapRegion implements GuestRegion {
  readonly backend = 'kernel' as const;
  readonly handle: MmapRegionHandle;
  private view: Uint8Array | undefined;
  released = false;

  constructor(
    readonly address: number,
    readonly length: number,
  ) {
    this.handle = { kind: 'mmap', address, length, status: new SharedArrayBuffer(STATUS_BYTES) };
  }

  bytes(): Uint8Array {
    if (this.released) throw new UffdRangeError('bytes(): the region was released');
    this.view ??= new Uint8Array(loadNative().view(this.address, this.length));
    return this.view;
  }

  discard(offset: number, length: number): void {
    checkSubrange(this, offset, length, 'discard');
    loadNative().madviseDontneed(this.address + offset, length);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.view = undefined;
    live.delete(this);
    loadNative().munmap(this.address, this.length);
  }
}

// Fake bases for sim regions: far from where Linux places mmaps, never reused.
let nextSimBase = 0x1000_0000_0000;

export class SimRegion implements GuestRegion {
  readonly backend = 'sim' as const;
  readonly handle: SimRegionHandle;
  released = false;
  // Whether bytes() was handed out: writes through it bypass the present bits.
  private viewed = false;

  constructor(
    readonly address: number,
    readonly length: number,
  ) {
    const pages = length / PAGE_SIZE;
    this.handle = {
      kind: 'sim',
      address,
      length,
      buffer: new SharedArrayBuffer(length),
      present: new SharedArrayBuffer(bitmapWords(pages) * 4),
      control: new SharedArrayBuffer(controlBytes(pages)),
      status: new SharedArrayBuffer(STATUS_BYTES),
    };
  }

  bytes(): Uint8Array {
    this.viewed = true;
    return new Uint8Array(this.handle.buffer);
  }

  /**
   * Marks present each page of [first, first + pages) that holds a nonzero
   * byte. The kernel populates a page on its first touch, so memory written
   * before registration (e.g. a guest image loaded by the main thread) never
   * faults; the sim sees vCPU touches through its gate but not main-thread
   * writes through bytes(). Untouched memory reads as zeros, so a nonzero page
   * was certainly written. A page written with zeros only still faults here,
   * and is then placed with whatever the handler supplies.
   */
  adoptMainThreadWrites(first: number, pages: number): void {
    if (!this.viewed) return;
    const words = new Int32Array(this.handle.buffer);
    const present = new Int32Array(this.handle.present);
    const perPage = PAGE_SIZE / 4;
    for (let page = first; page < first + pages; page++) {
      if (hasBit(present, page)) continue;
      for (let w = page * perPage, end = w + perPage; w < end; w++) {
        if (words[w] !== 0) {
          setBit(present, page);
          break;
        }
      }
    }
  }

  // Like MADV_DONTNEED on private anonymous memory: the bytes are gone (read
  // back as zeros if unregistered) and a registered page faults again.
  discard(offset: number, length: number): void {
    checkSubrange(this, offset, length, 'discard');
    const present = new Int32Array(this.handle.present);
    const first = pageIndex(offset);
    for (let p = first; p < first + length / PAGE_SIZE; p++) clearBit(present, p);
    new Uint8Array(this.handle.buffer, offset, length).fill(0);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    live.delete(this);
  }
}

/** Anonymous guest RAM of `length` bytes (a multiple of 4096), not yet touched. */
export function allocateRegion(length: number, backend: Backend): GuestRegion {
  checkRange(0, length, 'allocateRegion');
  let region: GuestRegion;
  if (backend === 'kernel') {
    region = new MmapRegion(loadNative().mmap(length), length);
  } else {
    const base = nextSimBase;
    nextSimBase += Math.ceil(length / 0x4000_0000 + 1) * 0x4000_0000;
    region = new SimRegion(base, length);
  }
  live.add(region);
  return region;
}

// Places arriving pages into guest RAM: runs of missing pages with one
// UFFDIO_COPY (the run's payload is contiguous in the frame, passed as a
// subarray: no copy), zero runs with one UFFDIO_ZEROPAGE, and keeps the
// received-pages bitmap that recovery sends back to the source.
//
// THE RULE: this thread never reads or writes guest RAM that may be missing;
// it would fault, and the kernel would put to sleep the very thread that is
// supposed to resolve the fault. RAM is touched directly in exactly one
// place, overwritePresent(), and only for pages the bitmap says are present.
import type { Logger } from '../log.ts';
import type { PageFrame } from '../protocol/messages.ts';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import type { PlacementRegion, PlacementUffd } from './uffd-port.ts';

export interface PagePlacerOptions {
  readonly uffd: PlacementUffd;
  readonly region: PlacementRegion;
  readonly pageSize: number;
  readonly log: Logger;
  /** The received-pages set, when another thread (the fault thread) places into the same RAM. */
  readonly received?: PageBitmap;
}

export interface PlacerFigures {
  placedPages: number;
  zeroPages: number;
  /** Pages that arrived again (urgent and bulk both sent them): dropped. */
  duplicatePages: number;
  /** Precopy pages re-sent because they were dirtied: overwritten in place. */
  overwrittenPages: number;
  /** Pages of precopy frames taken, placed or overwritten: what precopy-sync counts. */
  precopyPages: number;
  discardedPages: number;
  /** Pages the kernel reported present already (EEXIST): someone else placed them. */
  existedPages: number;
  copyIoctls: number;
  zeropageIoctls: number;
}

export class PagePlacer {
  readonly received: PageBitmap;
  readonly figures: PlacerFigures = {
    placedPages: 0,
    zeroPages: 0,
    duplicatePages: 0,
    overwrittenPages: 0,
    precopyPages: 0,
    discardedPages: 0,
    existedPages: 0,
    copyIoctls: 0,
    zeropageIoctls: 0,
  };
  private readonly placedListeners: ((start: number, count: number) => void)[] = [];
  private readonly uffd: PlacementUffd;
  private readonly region: PlacementRegion;
  private readonly pageSize: number;

  constructor(options: PagePlacerOptions) {
    this.uffd = options.uffd;
    this.region = options.region;
    this.pageSize = options.pageSize;
    this.received = options.received ?? new PageBitmap(Math.floor(options.region.length / options.pageSize));
  }

  get allPresent(): boolean {
    return this.received.full;
  }

  /** Called after each run of pages arrives and is present (placed here and its waiters woken, or present already). */
  onPlaced(listener: (start: number, count: number) => void): void {
    this.placedListeners.push(listener);
  }

  /** Places a validated frame; present pages are overwritten only for precopy frames. */
  place(frame: PageFrame): void {
    const end = frame.start + frame.count;
    let p: number = frame.start;
    while (p < end) {
      const missing = this.received.clearRunLength(p, end - p);
      if (missing > 0) {
        this.placeMissing(frame, p, missing);
        p += missing;
        continue;
      }
      const present = this.received.setRunLength(p, end - p);
      if (frame.precopy) {
        this.overwritePresent(frame, p, present);
      } else {
        this.figures.duplicatePages += present;
        for (const l of this.placedListeners) l(p, present);
      }
      p += present;
    }
    if (frame.precopy) this.figures.precopyPages += frame.count;
  }

  /**
   * Drops pages the source dirtied after sending them, so the guest faults on
   * them and fetches the current bytes. Returns the number of pages dropped.
   */
  applyDiscards(runs: readonly number[]): number {
    let dropped = 0;
    for (let i = 0; i < runs.length; i += 2) {
      const end = runs[i] + runs[i + 1];
      let p = runs[i];
      while (p < end) {
        const present = this.received.setRunLength(p, end - p);
        if (present === 0) {
          p += Math.max(1, this.received.clearRunLength(p, end - p));
          continue;
        }
        this.region.discard(p * this.pageSize, present * this.pageSize);
        this.received.clearRange(p, present);
        dropped += present;
        p += present;
      }
    }
    this.figures.discardedPages += dropped;
    return dropped;
  }

  private placeMissing(frame: PageFrame, start: number, count: number): void {
    const address = this.region.address + start * this.pageSize;
    let result: { readonly existed: number };
    if (frame.type === 'zero-run') {
      result = this.uffd.zeropage(address, count * this.pageSize);
      this.figures.zeropageIoctls++;
      this.figures.zeroPages += count;
    } else {
      const from = (start - frame.start) * this.pageSize;
      result = this.uffd.copy(address, frame.payload.subarray(from, from + count * this.pageSize));
      this.figures.copyIoctls++;
    }
    this.figures.existedPages += result.existed / this.pageSize;
    // Placed by us or (EEXIST) by someone else: either way present and woken.
    this.received.setRange(start, count);
    this.figures.placedPages += count;
    for (const l of this.placedListeners) l(start, count);
  }

  // The only direct access to guest RAM on this thread: pages the bitmap says
  // are present (placed earlier by this thread, not discarded since) cannot fault.
  private overwritePresent(frame: PageFrame, start: number, count: number): void {
    const at = start * this.pageSize;
    const length = count * this.pageSize;
    if (frame.type === 'zero-run') {
      this.region.zero(at, length);
    } else {
      const from = (start - frame.start) * this.pageSize;
      this.region.write(at, frame.payload.subarray(from, from + length));
    }
    this.figures.overwrittenPages += count;
  }
}

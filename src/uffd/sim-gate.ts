// The software backend's stand-in for the MMU, used by vCPU threads: a page
// that is not present posts a fault to the ring and puts the thread to sleep
// in Atomics.wait until the userfaultfd places the page and wakes it.
import { threadId } from 'node:worker_threads';
import { UffdClosedError, UffdRangeError } from './errors.ts';
import { PAGE_SIZE, hasBit, hex, setBit } from './pages.ts';
import type { SimRegionHandle } from './region.ts';
import {
  ABORTED,
  ENTRY_WORDS,
  FLAG_WRITE,
  NOTIFY,
  READ_SEQ,
  RING_CAPACITY,
  STATE,
  WRITE_SEQ,
  simViews,
  type SimViews,
} from './sim-layout.ts';

export interface PageGate {
  /** One bit per 4 KiB page (bit p&31 of word p>>5); a vCPU may test it inline. */
  readonly present: Int32Array;
  /** Returns once the page holding `offset` is present; throws UFFD_ERR_CLOSED if the userfaultfd went away. */
  ensure(offset: number, write: boolean): void;
}

export class SimPageGate implements PageGate {
  readonly present: Int32Array;
  private readonly status: Int32Array;
  private readonly views: SimViews;
  private readonly length: number;

  constructor(handle: SimRegionHandle) {
    this.present = new Int32Array(handle.present);
    this.status = new Int32Array(handle.status);
    this.views = simViews(handle.control, handle.length / PAGE_SIZE);
    this.length = handle.length;
  }

  ensure(offset: number, write: boolean): void {
    const page = Math.floor(offset / PAGE_SIZE);
    if (hasBit(this.present, page)) return;
    if (!(offset >= 0 && offset < this.length)) {
      throw new UffdRangeError(`ensure: offset ${hex(offset)} is outside the ${this.length}-byte region`);
    }
    this.sleepUntilPresent(page, write);
  }

  // Mirrors handle_userfault(): register as a sleeper before re-checking the
  // page, so a placement racing with us either is seen here or bumps our wake
  // cell (which makes Atomics.wait return at once). A WAKE that finds the page
  // still missing makes us fault again, as the kernel retries the access.
  private sleepUntilPresent(page: number, write: boolean): void {
    const { sleepers, registered, wake } = this.views;
    const word = page >>> 5;
    for (;;) {
      if (Atomics.load(this.status, STATE) === ABORTED) {
        throw new UffdClosedError(`the userfaultfd serving page ${page} was closed while it was missing`);
      }
      if (!hasBit(registered, page)) {
        // Unregistered anonymous memory reads as zeros, like the kernel's.
        setBit(this.present, page);
        return;
      }
      Atomics.add(sleepers, word, 1);
      try {
        const seen = Atomics.load(wake, page);
        if (hasBit(this.present, page)) return;
        this.postFault(page, write);
        Atomics.wait(wake, page, seen);
      } finally {
        Atomics.sub(sleepers, word, 1);
      }
      if (hasBit(this.present, page)) return;
    }
  }

  private postFault(page: number, write: boolean): void {
    const { header, ring } = this.views;
    const seq = Atomics.add(header, WRITE_SEQ, 1);
    for (;;) {
      const read = Atomics.load(header, READ_SEQ);
      if (((seq - read) | 0) < RING_CAPACITY) break;
      if (Atomics.load(this.status, STATE) === ABORTED) throw new UffdClosedError('the userfaultfd was closed');
      Atomics.wait(header, READ_SEQ, read);
    }
    const at = (seq & (RING_CAPACITY - 1)) * ENTRY_WORDS;
    ring[at] = page;
    ring[at + 1] = write ? FLAG_WRITE : 0;
    ring[at + 2] = threadId;
    Atomics.store(ring, at + 3, (seq + 1) | 0);
    Atomics.add(header, NOTIFY, 1);
    Atomics.notify(header, NOTIFY);
  }
}

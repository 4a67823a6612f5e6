// Turns userfaultfd fault events into urgent page requests: one request per
// missing page however many vCPUs fault on it, coalesced per event-loop turn
// (a uffd wake-up drains many events), resent after a reconnect. Also times
// each fault until its page is placed (fault latency, vCPU blocktime).
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.ts';
import { pageIndex, type PageIndex } from '../protocol/layout.ts';
import { MAX_REQUEST_PAGES } from '../protocol/version.ts';
import { FaultStats } from './fault-stats.ts';
import type { PagePlacer } from './page-placer.ts';
import type { FaultEvent, PlacementUffd } from './uffd-port.ts';

export interface FaultHandlerOptions {
  readonly placer: PagePlacer;
  readonly uffd: PlacementUffd;
  readonly regionAddress: number;
  readonly pageSize: number;
  /** Sends one page-request on the urgent channel; false when no channel is up (paused). */
  readonly request: (pages: PageIndex[]) => boolean;
  readonly log: Logger;
}

export interface FaultFigures {
  faults: number;
  /** Faults on a page already requested by another vCPU (or twice by one). */
  dedupedFaults: number;
  /** Faults on a page that was placed meanwhile: woken, nothing requested. */
  lateFaults: number;
  /** page-request messages sent (postcopy-requests). */
  requests: number;
  requestedPages: number;
}

const ANONYMOUS_THREAD = -1;

export class FaultHandler {
  readonly stats = new FaultStats();
  readonly figures: FaultFigures = { faults: 0, dedupedFaults: 0, lateFaults: 0, requests: 0, requestedPages: 0 };
  /** Requested and not yet placed: page → (thread → fault time in ms). */
  private readonly waiting = new Map<number, Map<number, number>>();
  private unsent: PageIndex[] = [];
  private flushQueued = false;

  constructor(private readonly options: FaultHandlerOptions) {
    options.placer.onPlaced((start, count) => this.placed(start, count));
  }

  /** Pages requested and still missing. */
  get outstanding(): number {
    return this.waiting.size;
  }

  /** One fault; its request goes once the current task is done, with any other faults it brings. */
  handleFault(event: FaultEvent): void {
    if (!this.record(event) || this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(this.flushQueuedRequests);
  }

  /**
   * The events of one wake-up, as the fault thread reads them: one request
   * for the pages of their missing-page faults, sent before this returns. A
   * request waiting for the microtask queue went out after the rest of the
   * poll loop's turn.
   */
  handleFaults(events: readonly { readonly type: string }[]): void {
    for (const event of events) if (event.type === 'pagefault' && !(event as FaultEvent).wp) this.record(event as FaultEvent);
    this.flush();
  }

  /** Counts a fault and remembers who waits for its page; true if the page is newly to be requested. */
  private record(event: FaultEvent): boolean {
    const now = performance.now();
    const { placer, pageSize, regionAddress } = this.options;
    const page = Math.floor((event.address - regionAddress) / pageSize);
    this.figures.faults++;
    if (placer.received.has(page)) {
      // Placed between the fault and our reading its event; the placement
      // woke it already on the kernel, a WAKE makes sure on every backend.
      this.figures.lateFaults++;
      this.options.uffd.wake(regionAddress + page * pageSize, pageSize);
      return false;
    }
    const thread = event.threadId ?? ANONYMOUS_THREAD;
    const waiters = this.waiting.get(page);
    if (waiters) {
      this.figures.dedupedFaults++;
      if (!waiters.has(thread)) waiters.set(thread, now);
      return false;
    }
    this.waiting.set(page, new Map<number, number>().set(thread, now));
    this.unsent.push(pageIndex(page));
    return true;
  }

  // Bound once: the fault path runs it every wake-up, and garbage there is a
  // young-generation collection that stops this thread (2-20 ms on a VM).
  private readonly flushQueuedRequests = (): void => this.flush();

  /** After a reconnect: ask again for every page still missing that a vCPU waits for. */
  resendOutstanding(): void {
    this.unsent = [...this.waiting.keys()].map(pageIndex);
    this.flush();
  }

  private flush(): void {
    this.flushQueued = false;
    while (this.unsent.length > 0) {
      const batch = this.unsent.length <= MAX_REQUEST_PAGES ? this.unsent : this.unsent.slice(0, MAX_REQUEST_PAGES);
      if (!this.options.request(batch)) return; // kept in `waiting`; resendOutstanding() asks again
      this.unsent = batch === this.unsent ? [] : this.unsent.slice(batch.length);
      this.figures.requests++;
      this.figures.requestedPages += batch.length;
    }
  }

  private placed(start: number, count: number): void {
    if (this.waiting.size === 0) return;
    const now = performance.now();
    if (this.waiting.size < count) {
      for (const page of [...this.waiting.keys()]) if (page >= start && page < start + count) this.settle(page, now);
    } else {
      for (let p = start; p < start + count; p++) this.settle(p, now);
    }
  }

  private settle(page: number, now: number): void {
    const waiters = this.waiting.get(page);
    if (!waiters) return;
    this.waiting.delete(page);
    for (const since of waiters.values()) this.stats.record(since, now);
  }
}

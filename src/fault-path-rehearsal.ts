// A page thread rehearses the fault path before any migration needs it:
// fault → page-request → answer → UFFDIO_COPY / UFFDIO_ZEROPAGE, a few
// thousand times, through the very code a migration runs (RequestService
// and PageService, which make the closures a migration calls, over
// MigrationChannel, BlockingWebSocket and PollLoop), between two ends of a
// socket pair and into a scratch region of a scratch userfaultfd. A third
// of the faults the kernel raises, so that the events are read as a
// migration's are. A migration has only a few thousand faults: cold,
// V8 ran its first thousand in unoptimized code, at twice the CPU per fault
// (bench:fault-path with 1,500 faults against 20,000), and compiled the rest
// on helper threads that the vCPU and the push needed. Rehearsed, both
// happen while the thread waits for a source.
//
// Both ends run in the calling thread, so a source's request thread warms
// the destination's half too: unused there, and cheaper than a second path.
// Real work comes first: the rehearsal stops at the round trip after the
// thread is given any, so a migration that starts at once waits for it
// about a millisecond, and runs the fault path as warm as it got. A round
// trip that never completes (a bug; nothing of the kind was ever seen) ends
// the rehearsal after a few seconds rather than holding up the migration.
import { closeSync, mkdtempSync, openSync, rmSync, write } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import { PostcopyError } from './errors.ts';
import type { Logger } from './log.ts';
import { PageService, pageThreadRegion } from './destination/page-service.ts';
import { adoptChannel } from './protocol/channel-handoff.ts';
import type { MigrationChannel } from './protocol/channel.ts';
import type { RamLayout } from './protocol/layout.ts';
import { PageBitmap } from './protocol/page-bitmap.ts';
import { SharedMigrationState } from './protocol/shared-state.ts';
import { maxPageFrameBytes } from './protocol/page-frame.ts';
import { MAX_CONTROL_BYTES } from './protocol/version.ts';
import { PollLoop } from './poll-loop.ts';
import { CursorHint } from './source/cursor-hint.ts';
import { FrameSender } from './source/frame-sender.ts';
import { SendWindow } from './source/send-window.ts';
import { TransferCounters } from './source/transfer-counters.ts';
import { RequestService } from './source/request-service.ts';
import { UrgentQueue } from './source/urgent-queue.ts';
import { KernelUserfaultfd } from './uffd/kernel.ts';
import { loadNative } from './uffd/native.ts';
import { openUserfaultfd } from './uffd/open.ts';
import type { AccessPath, Userfaultfd } from './uffd/userfaultfd.ts';

/**
 * Enough for V8 to optimize every function on the path. V8 optimizes a
 * small function after a few thousand calls: with 3,000 round trips, a
 * third of them kernel faults, the code that reads fault events and sends
 * requests (msgpackr's pack among it) was still unoptimized when a
 * migration began, and compiled on the helper threads in its first 100 ms
 * (perf's jitdump, by the time each function's optimized code arrived).
 */
export const REHEARSAL_ROUND_TRIPS = 6000;
// Passes over objects of their own. V8 takes a field of an object shape for
// a constant until a second object of that shape is built, and throws away
// the code compiled on that promise when it is: rehearsed through one set of
// objects, the fault path was deoptimized by the migration's own, at its
// first faults, and compiled again on the helper threads it needed.
const REHEARSAL_PASSES = 3;
// After each pass's round trips, laps of frames as the bulk push sends them
// (a bulk thread rehearses too, and otherwise met its first multi-page frame
// in a migration): runs of 1 to 32 pages, the last 32 zero pages in one run;
// every other lap, the whole region as one frame of SCRATCH_PAGES pages (the
// push's default frame, 256 KiB), which the socket pair's buffer takes only
// in parts, as a migration's TCP delivers the push's frames. A frame read in
// parts takes a branch a whole one does not, and code compiled without it
// was thrown away at a migration's first bulk frame, and compiled again in
// postcopy.
const BULK_RUNS = [1, 2, 5, 8, 16, 32];
const BULK_LAPS = 50;
// The scratch region's first page, as a page index, in each pass: a
// migration's requests name pages up to the hundreds of thousands, and
// msgpack encodes indices below 128, below 65,536 and above each its own
// way, in code of its own on both sides.
const FIRST_PAGES = [0, 1 << 10, 1 << 17];
// What a bulk lap waits for: every page of the scratch region, not one page.
const WHOLE_REGION = -1;
// The ids the page service adopts the rehearsal's channels with.
const URGENT_ID = 0;
const BULK_ID = 1;
// Placed before a lap sends them, one in a data run and one in the zero run.
const PLACED_DATA_PAGE = 9;
const PLACED_ZERO_PAGE = 40;
const SCRATCH_PAGES = 64;
// Any plausible guest layout: the channels check page indices against it.
const SCRATCH_RAM_BASE = 0x8000_0000;
// One round trip in this many has the kernel raise its fault: each costs a
// write(2) on libuv's pool and four thread hand-offs that a made-up event
// does not (6,000 round trips take 1.25 s in a page thread with every fault
// raised so, 1.0 s with half), and half, 3,000 events, is what V8 needed to
// optimize the code that reads them.
const KERNEL_FAULT_EVERY = 2;
// A thread id for the fault events, as the kernel reports with UFFD_FEATURE_THREAD_ID.
const REHEARSAL_THREAD_ID = 1;
// Far beyond any round trip seen (a round trip takes well under a
// millisecond), and short beside what a migration may wait for its page threads.
export const REHEARSAL_STALL_MS = 2000;

/** A rehearsal round trip did not complete in time: the rehearsal was abandoned. */
export class RehearsalStalledError extends PostcopyError {
  constructor(roundTrip: number, ms: number) {
    super('REHEARSAL_STALLED', `fault-path rehearsal round trip ${roundTrip} did not complete within ${ms} ms; rehearsal abandoned`);
  }
}

export interface RehearsalOptions {
  readonly roundTrips?: number;
  /** Asked before each round trip: true ends the rehearsal there. */
  readonly interrupted?: () => boolean;
  /** How long one round trip may take before the rehearsal is abandoned with a RehearsalStalledError. */
  readonly stallMs?: number;
  /** Round trips whose fault is never raised, as if its page request were lost: how tests make one stall. */
  readonly unanswered?: ReadonlySet<number>;
}

export interface RehearsalResult {
  /** Faults asked for, answered and placed. */
  readonly roundTrips: number;
  /** Every page of the last pass read back as the source end sent it. */
  readonly verified: boolean;
  /** Pages the bulk laps found placed by someone else (EEXIST), and pages they sent again once present. */
  readonly existedPages: number;
  readonly duplicatePages: number;
  /** Page requests sent, and the pages they named: a burst of faults goes as one request. */
  readonly requests: number;
  readonly requestedPages: number;
  readonly ms: number;
  /** The scratch userfaultfd's access path. */
  readonly path: AccessPath;
  /** Where the faults came from: the kernel, or made up where it leaves kernel faults alone. */
  readonly faults: 'kernel' | 'made up';
}

/**
 * Runs up to `roundTrips` faults through the fault path; undefined (and
 * nothing run) where no kernel userfaultfd can be opened, since the
 * software backend has no page threads to warm.
 */
export async function rehearseFaultPath(log: Logger, options: RehearsalOptions = {}): Promise<RehearsalResult | undefined> {
  const { roundTrips = REHEARSAL_ROUND_TRIPS, interrupted = () => false, stallMs = REHEARSAL_STALL_MS, unanswered = new Set<number>() } = options;
  let uffd: Userfaultfd;
  try {
    // Which access path the scratch fd came through is no news to anyone: not at info.
    uffd = openUserfaultfd({ logger: log.child({}, { level: 'warn' }) });
  } catch (err) {
    log.debug({ err }, 'no userfaultfd to rehearse the fault path with');
    return undefined;
  }
  if (!(uffd instanceof KernelUserfaultfd)) {
    uffd.close();
    return undefined;
  }
  const native = loadNative();
  const pageSize = native.pageSize();
  const length = SCRATCH_PAGES * pageSize;
  const address = native.mmap(length);
  // Untouched but for the scratch pages of each pass, this costs no memory.
  const sourceLength = (Math.max(...FIRST_PAGES) + SCRATCH_PAGES) * pageSize;
  const sourceAddress = native.mmap(sourceLength);
  const sink = uffd.handlesKernelFaults ? openSink() : undefined;
  try {
    uffd.register(address, length);
    const started = performance.now();
    const perPass = Math.ceil(roundTrips / REHEARSAL_PASSES);
    let done = 0;
    let verified = true;
    const sums = { existedPages: 0, duplicatePages: 0, requests: 0, requestedPages: 0 };
    for (let i = 0; done < roundTrips; i++) {
      native.madviseDontneed(address, length);
      const to = Math.min(roundTrips, done + perPass);
      const first = FIRST_PAGES[i % FIRST_PAGES.length];
      const pass = await rehearse(uffd, address, sourceAddress, pageSize, { from: done, to, interrupted, stallMs, unanswered, sink, first }, log);
      done = pass.done;
      verified &&= pass.verified;
      for (const key of Object.keys(sums) as (keyof typeof sums)[]) sums[key] += pass[key];
      // Interrupted: the pass stopped short.
      if (done < to) break;
    }
    return { roundTrips: done, verified, ...sums, ms: performance.now() - started, path: uffd.path, faults: sink === undefined ? 'made up' : 'kernel' };
  } finally {
    uffd.close();
    if (sink !== undefined) closeSync(sink);
    native.munmap(address, length);
    native.munmap(sourceAddress, sourceLength);
  }
}

/** A file that takes the pages written out to raise faults, unlinked at once. */
function openSink(): number {
  const dir = mkdtempSync(join(tmpdir(), 'postcopy-rehearsal-'));
  try {
    return openSync(join(dir, 'sink'), 'w');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface PassOptions extends Required<Omit<RehearsalOptions, 'roundTrips'>> {
  /**
   * Where a pool thread of libuv write(2)s each page out, so that the kernel
   * faults on it as on a vCPU's touch and the page service reads a real
   * event; undefined where the userfaultfd leaves kernel faults alone
   * (UFFD_USER_MODE_ONLY), and the events are made up instead.
   */
  readonly sink: number | undefined;
  /** The scratch region's first page, as a page index of the pass's RAM. */
  readonly first: number;
  /** Round trips from..to-1, counted over the whole rehearsal. */
  readonly from: number;
  readonly to: number;
}

type PassFigures = Pick<RehearsalResult, 'existedPages' | 'duplicatePages' | 'requests' | 'requestedPages'>;

/** One pass: round trips through objects of its own, built for it, from the first page of the (empty) scratch region. */
async function rehearse(
  uffd: KernelUserfaultfd,
  scratchAddress: number,
  sourceAddress: number,
  pageSize: number,
  { from, to, interrupted, stallMs, unanswered, sink, first }: PassOptions,
  log: Logger,
): Promise<{ done: number; verified: boolean } & PassFigures> {
  const native = loadNative();
  const length = SCRATCH_PAGES * pageSize;
  const pageCount = first + SCRATCH_PAGES;
  const layout: RamLayout = { pageSize, ramBase: SCRATCH_RAM_BASE, ramSize: pageCount * pageSize };
  const loop = new PollLoop(log);
  const [destinationFd, sourceFd] = native.socketPair();
  const states = SharedMigrationState.holding('postcopy-active');

  // The source's RAM, of which only the scratch pages are ever touched. Every other page zero, as in a typical guest: both placements get warm.
  const ram = new Uint8Array(native.view(sourceAddress, pageCount * pageSize));
  const page = (p: number): Uint8Array => ram.subarray((first + p) * pageSize, (first + p + 1) * pageSize);
  for (let p = 0; p < SCRATCH_PAGES; p++) page(p).fill(p % 2 === 0 ? p + 1 : 0);
  const counters = new TransferCounters();
  const frames = new FrameSender({ ram, pageSize, sent: new PageBitmap(pageCount), counters });
  const queue = new UrgentQueue({ frames, counters, cursor: new CursorHint(), pageCount, highWaterMark: 4 * 1024 * 1024 });
  let done = from;

  // A page thread's region, starting `first` pages before the scratch pages.
  const region = pageThreadRegion(scratchAddress - first * pageSize, pageCount * pageSize);
  const scratch = new Uint8Array(native.view(scratchAddress, length));
  const received = new PageBitmap(pageCount);
  const emptyScratch = (): void => {
    native.madviseDontneed(scratchAddress, length);
    received.clearAll();
  };
  // The page thread's half reads a descriptor of its own, as a page thread is given one.
  const events = new KernelUserfaultfd(uffd.handOverEvents(), uffd.path, uffd.features, log, { watch: false });
  let waiting: { page: number; resolve: () => void; reject: (err: Error) => void } | undefined;
  // Every channel end, as it closes: one that closes mid-rehearsal (none should) ends it rather than leaving it waiting.
  const closings: Promise<void>[] = [];
  const closing = (end: string): (() => void) => {
    let closed!: () => void;
    closings.push(new Promise<void>((resolve) => (closed = resolve)));
    return () => {
      waiting?.reject(new Error(`the rehearsal's ${end} closed`));
      closed();
    };
  };
  /** The destination ends, by the id the page service adopted them with. */
  const destinationEnds = new Map<number, () => void>();
  // Each half is what a thread serves a migration with: the source's request thread, a page thread.
  const requests = new RequestService({
    queue,
    states,
    loop,
    log,
    onChannelClosed: closing('urgent source end'),
    onStopped: () => undefined,
  });
  requests.adopt(URGENT_ID, { fd: sourceFd, kind: 'urgent', role: 'source', layout, maxPayload: MAX_CONTROL_BYTES });
  const service = new PageService({
    role: 'faults',
    uffd: events,
    region,
    pageSize,
    received,
    states,
    state: 'postcopy-active',
    loop,
    log,
    onAllPresent: () => undefined,
    onPrecopyPlaced: () => undefined,
    onChannelClosed: (id) => destinationEnds.get(id)?.(),
    onFailure: (message) => waiting?.reject(new Error(message)),
  });
  const destinationMaxPayload = Math.max(MAX_CONTROL_BYTES, maxPageFrameBytes(pageSize));
  destinationEnds.set(URGENT_ID, closing('urgent destination end'));
  service.adopt(URGENT_ID, { fd: destinationFd, kind: 'urgent', role: 'destination', layout, maxPayload: destinationMaxPayload });
  let bulkSource: MigrationChannel | undefined;
  const { placer, faults } = service;
  const met = (): PassFigures => ({
    existedPages: placer.figures.existedPages,
    duplicatePages: placer.figures.duplicatePages,
    requests: faults.figures.requests,
    requestedPages: faults.figures.requestedPages,
  });

  /** What waiting for the whole region also waits for: frames of pages already present, counted. */
  let duplicatesWanted = 0;
  placer.onPlaced(() => {
    if (!waiting) return;
    const over = waiting.page === WHOLE_REGION ? received.count === SCRATCH_PAGES && placer.figures.duplicatePages >= duplicatesWanted : received.has(waiting.page);
    if (over) waiting.resolve();
  });
  const wholeRegion = (): Promise<void> => new Promise<void>((resolve, reject) => (waiting = { page: WHOLE_REGION, resolve, reject }));
  // One timer for the whole rehearsal, re-armed per round trip: nothing allocated per fault.
  const stall = setTimeout(() => waiting?.reject(new RehearsalStalledError(done, stallMs)), stallMs);
  let pass = 0;
  /** Writes raising faults, not yet returned: all of them are waited for before a page they read is dropped. */
  let writes: Promise<void>[] = [];
  const madeUpFault = (p: number): void =>
    // Shaped as decodeMessages() makes them, so that optimized code keeps its assumptions.
    faults.handleFault({ type: 'pagefault', address: scratchAddress + p * pageSize, write: true, wp: false, threadId: REHEARSAL_THREAD_ID });
  const raiseFault = (p: number): void => {
    if (sink === undefined || done % KERNEL_FAULT_EVERY !== 0) {
      madeUpFault(p);
      return;
    }
    writes.push(
      new Promise<void>((resolve) =>
        write(sink, scratch, p * pageSize, pageSize, 0, (err) => {
          if (err) waiting?.reject(err);
          resolve();
        }),
      ),
    );
  };
  const writesReturned = async (): Promise<void> => {
    await Promise.all(writes);
    writes = [];
  };
  // The round trips' loop, a function of its own: the loop that made this
  // one hot, V8 compiled all of this one (150-270 ms of a helper thread, at
  // times into a migration's first milliseconds), only to throw it away.
  const roundTrips = async (): Promise<void> => {
    for (; done < to && !interrupted(); done++) {
      const p = (done - from) % SCRATCH_PAGES;
      if (p === 0 && done > from) {
        await writesReturned();
        emptyScratch();
        pass = 0;
      }
      const placed = new Promise<void>((resolve, reject) => (waiting = { page: first + p, resolve, reject }));
      if (!unanswered.has(done)) raiseFault(p);
      await placed;
      stall.refresh();
      pass++;
    }
  };
  try {
    await roundTrips();
    waiting = undefined;
    await writesReturned();
    // Only pages placed in this pass: reading a missing one would put this thread to sleep on itself.
    if (!samePages(scratch, ram, received, first, pass, pageSize)) return { done, verified: false, ...met() };
    if (done < to) return { done, verified: true, ...met() };

    // A guest that touches many pages at once: one request carries them all.
    emptyScratch();
    const burst = wholeRegion();
    for (let p = 0; p < SCRATCH_PAGES; p++) madeUpFault(p);
    await burst;
    stall.refresh();
    if (!samePages(scratch, ram, received, first, SCRATCH_PAGES, pageSize)) return { done, verified: false, ...met() };

    // The bulk thread's part: the whole region in runs of every length up
    // to a full frame, data and zero, lap after lap over the emptied region.
    // As in a migration, where the push and the answers to requests cross,
    // a page of each kind is already placed by someone else (EEXIST), and
    // the lap ends with frames of pages already present.
    for (let p = 0; p < SCRATCH_PAGES; p++) page(p).fill(p < SCRATCH_PAGES / 2 ? p + 7 : 0);
    const bulk = new FrameSender({ ram, pageSize, sent: new PageBitmap(pageCount), counters });
    // Over a bulk channel, as the bulk thread's frames come: what is checked per kind of channel gets warm too.
    const [bulkDestinationFd, bulkSourceFd] = native.socketPair();
    bulkSource = adoptChannel({ fd: bulkSourceFd, kind: 'bulk', role: 'source', layout, maxPayload: MAX_CONTROL_BYTES }, states, log, loop);
    bulkSource.onClose(closing('bulk source end'));
    destinationEnds.set(BULK_ID, closing('bulk destination end'));
    service.adopt(BULK_ID, { fd: bulkDestinationFd, kind: 'bulk', role: 'destination', layout, maxPayload: destinationMaxPayload });
    const window = new SendWindow(bulkSource, 4 * 1024 * 1024);
    let laps = 0;
    for (; laps < BULK_LAPS && !interrupted(); laps++) {
      emptyScratch();
      const placedAll = wholeRegion();
      const oneFrame = laps % 2 === 1;
      duplicatesWanted = placer.figures.duplicatePages + (oneFrame ? 0 : 2 + SCRATCH_PAGES / 2);
      events.copy(scratchAddress + PLACED_DATA_PAGE * pageSize, page(PLACED_DATA_PAGE));
      events.zeropage(scratchAddress + PLACED_ZERO_PAGE * pageSize, pageSize);
      if (oneFrame) {
        bulk.send(window, first, SCRATCH_PAGES, false, false);
      } else {
        let start = 0;
        for (const run of BULK_RUNS) {
          bulk.send(window, first + start, run, start >= SCRATCH_PAGES / 2, false);
          start += run;
        }
        bulk.send(window, first, 2, false, false);
        bulk.send(window, first + SCRATCH_PAGES / 2, SCRATCH_PAGES / 2, true, false);
      }
      await placedAll;
      stall.refresh();
    }
    waiting = undefined;
    // Interrupted before its first lap, the region still holds the burst's pages, checked above.
    return { done, verified: laps === 0 || samePages(scratch, ram, received, first, SCRATCH_PAGES, pageSize), ...met() };
  } finally {
    clearTimeout(stall);
    waiting = undefined;
    service.stopReadingFaults();
    requests.stop(1000, 'rehearsal over');
    bulkSource?.close();
    service.closeChannel(1000, 'rehearsal over');
    await Promise.all(closings);
    events.close();
  }
}

/** Whether the scratch region's first `pages` pages were placed and hold what the source's RAM holds from page `first` on. */
function samePages(placed: Uint8Array, sent: Uint8Array, received: PageBitmap, first: number, pages: number, pageSize: number): boolean {
  for (let p = 0; p < pages; p++) {
    const at = p * pageSize;
    const from = (first + p) * pageSize;
    if (!received.has(first + p) || Buffer.compare(placed.subarray(at, at + pageSize), sent.subarray(from, from + pageSize)) !== 0) return false;
  }
  return true;
}

/**
 * A page thread's message loop: it rehearses until its first message, then
 * hands every message to `handle`, in order, after the rehearsal (its poll
 * loop and a served one must not take turns); `rehearsed` is called once it
 * is over. A failed rehearsal only says why: the thread still serves
 * correctly, only slower at first.
 */
export function serveAfterRehearsal<M>(
  port: MessagePort,
  log: Logger,
  handle: (m: M) => void,
  rehearsed: () => void,
  options: Omit<RehearsalOptions, 'interrupted'> = {},
): void {
  serveAfter(port, (wanted) => rehearseQuietly(log, { ...options, interrupted: () => wanted.aborted }), handle, rehearsed);
}

/** serveAfterRehearsal with a rehearsal of the thread's own, which must not throw and stops once `wanted` aborts. */
export function serveAfter<M>(port: MessagePort, rehearse: (wanted: AbortSignal) => Promise<void>, handle: (m: M) => void, rehearsed: () => void): void {
  const wanted = new AbortController();
  const over = rehearse(wanted.signal);
  port.on('message', (m: M) => {
    wanted.abort();
    void over.then(() => handle(m));
  });
  void over.then(rehearsed);
}

async function rehearseQuietly(log: Logger, options: RehearsalOptions): Promise<void> {
  try {
    const result = await rehearseFaultPath(log, options);
    if (result && !result.verified) log.warn('the fault-path rehearsal placed pages that differ from those sent; serving anyway');
    else if (result) log.debug({ roundTrips: result.roundTrips, ms: Math.round(result.ms), path: result.path, faults: result.faults }, 'fault path rehearsed');
  } catch (err) {
    log.warn({ err }, 'the fault-path rehearsal failed; the first faults will be slower');
  }
}

// A page thread rehearses the fault path before any migration needs it:
// fault → page-request → answer → UFFDIO_COPY / UFFDIO_ZEROPAGE, a few
// thousand times, through the very objects a migration uses (FaultHandler,
// UrgentQueue, FrameSender, PagePlacer, MigrationChannel, BlockingWebSocket,
// PollLoop), between two ends of a socket pair and into a scratch region of
// a scratch userfaultfd. A migration has only a few thousand faults: cold,
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
import type { MessagePort } from 'node:worker_threads';
import { PostcopyError } from './errors.ts';
import type { Logger } from './log.ts';
import { FaultHandler } from './destination/fault-handler.ts';
import { PagePlacer } from './destination/page-placer.ts';
import type { PlacementRegion } from './destination/uffd-port.ts';
import { adoptChannel } from './protocol/channel-handoff.ts';
import type { RamLayout } from './protocol/layout.ts';
import { PageBitmap } from './protocol/page-bitmap.ts';
import { maxPageFrameBytes } from './protocol/page-frame.ts';
import { MAX_CONTROL_BYTES } from './protocol/version.ts';
import { PollLoop } from './poll-loop.ts';
import { CursorHint } from './source/cursor-hint.ts';
import { FrameSender } from './source/frame-sender.ts';
import { SendWindow } from './source/send-window.ts';
import { TransferCounters } from './source/transfer-counters.ts';
import { UrgentQueue } from './source/urgent-queue.ts';
import { loadNative } from './uffd/native.ts';
import { openUserfaultfd } from './uffd/open.ts';
import type { AccessPath, Userfaultfd } from './uffd/userfaultfd.ts';

/** Enough for V8 to optimize every function on the path (bench:fault-path levels off well before). */
export const REHEARSAL_ROUND_TRIPS = 3000;
// Passes over objects of their own. V8 takes a field of an object shape for
// a constant until a second object of that shape is built, and throws away
// the code compiled on that promise when it is: rehearsed through one set of
// objects, the fault path was deoptimized by the migration's own, at its
// first faults, and compiled again on the helper threads it needed.
const REHEARSAL_PASSES = 3;
// After each pass's round trips, laps of frames as the bulk push sends them
// (a bulk thread rehearses too, and otherwise met its first multi-page frame
// in a migration): runs of 1 to 32 pages, the last 32 zero pages in one run.
const BULK_RUNS = [1, 2, 5, 8, 16, 32];
const BULK_LAPS = 50;
// What a bulk lap waits for: every page of the scratch region, not one page.
const WHOLE_REGION = -1;
const SCRATCH_PAGES = 64;
// Any plausible guest layout: the channels check page indices against it.
const SCRATCH_RAM_BASE = 0x8000_0000;
// A thread id for the fault events, as the kernel reports with UFFD_FEATURE_THREAD_ID.
const REHEARSAL_THREAD_ID = 1;
// Far beyond any round trip seen (the slowest rehearsals take 1.4 s for all
// 3,000), and short beside what a migration may wait for its page threads.
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
  /** Round trips whose page request the source end ignores, as if it were lost: how tests make one stall. */
  readonly unanswered?: ReadonlySet<number>;
}

export interface RehearsalResult {
  /** Faults asked for, answered and placed. */
  readonly roundTrips: number;
  /** Every page of the last pass read back as the source end sent it. */
  readonly verified: boolean;
  readonly ms: number;
  /** The scratch userfaultfd's access path. */
  readonly path: AccessPath;
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
  if (uffd.backend !== 'kernel') {
    uffd.close();
    return undefined;
  }
  const native = loadNative();
  const pageSize = native.pageSize();
  const length = SCRATCH_PAGES * pageSize;
  const address = native.mmap(length);
  try {
    uffd.register(address, length);
    const started = performance.now();
    const perPass = Math.ceil(roundTrips / REHEARSAL_PASSES);
    let done = 0;
    let verified = true;
    while (done < roundTrips) {
      native.madviseDontneed(address, length);
      const to = Math.min(roundTrips, done + perPass);
      const pass = await rehearse(uffd, address, pageSize, { from: done, to, interrupted, stallMs, unanswered }, log);
      done = pass.done;
      verified &&= pass.verified;
      // Interrupted: the pass stopped short.
      if (done < to) break;
    }
    return { roundTrips: done, verified, ms: performance.now() - started, path: uffd.path };
  } finally {
    uffd.close();
    native.munmap(address, length);
  }
}

interface PassOptions extends Required<Omit<RehearsalOptions, 'roundTrips'>> {
  /** Round trips from..to-1, counted over the whole rehearsal. */
  readonly from: number;
  readonly to: number;
}

/** One pass: round trips through objects of its own, built for it, from page 0 of the (empty) scratch region. */
async function rehearse(
  uffd: Userfaultfd,
  address: number,
  pageSize: number,
  { from, to, interrupted, stallMs, unanswered }: PassOptions,
  log: Logger,
): Promise<{ done: number; verified: boolean }> {
  const native = loadNative();
  const length = SCRATCH_PAGES * pageSize;
  const layout: RamLayout = { pageSize, ramBase: SCRATCH_RAM_BASE, ramSize: length };
  const loop = new PollLoop(log);
  const [destinationFd, sourceFd] = native.socketPair();
  const state = (): 'postcopy-active' => 'postcopy-active';
  const destination = adoptChannel(
    { fd: destinationFd, kind: 'urgent', role: 'destination', layout, maxPayload: Math.max(MAX_CONTROL_BYTES, maxPageFrameBytes(pageSize)) },
    state,
    log,
    loop,
  );
  const source = adoptChannel({ fd: sourceFd, kind: 'urgent', role: 'source', layout, maxPayload: MAX_CONTROL_BYTES }, state, log, loop);

  // Every other page zero, as in a typical guest: both placements get warm.
  const ram = new Uint8Array(length);
  for (let p = 0; p < SCRATCH_PAGES; p += 2) ram.fill(p + 1, p * pageSize, (p + 1) * pageSize);
  const counters = new TransferCounters();
  const frames = new FrameSender({ ram, pageSize, sent: new PageBitmap(SCRATCH_PAGES), counters });
  const queue = new UrgentQueue({ frames, counters, cursor: new CursorHint(), pageCount: SCRATCH_PAGES, highWaterMark: 4 * 1024 * 1024 });
  queue.attach(source);
  let done = from;
  source.onMessage((m) => {
    if (m.type === 'page-request' && !unanswered.has(done)) queue.request(m.pages);
  });

  const region: PlacementRegion = {
    address,
    length,
    bytes: () => new Uint8Array(native.view(address, length)),
    discard: (offset, bytes) => native.madviseDontneed(address + offset, bytes),
  };
  const received = new PageBitmap(SCRATCH_PAGES);
  const placer = new PagePlacer({ uffd, region, pageSize, log, received });
  const faults = new FaultHandler({
    placer,
    uffd,
    regionAddress: address,
    pageSize,
    log,
    request: (pages) => {
      destination.send({ type: 'page-request', pages });
      return true;
    },
  });
  destination.onMessage((m) => {
    if (m.type === 'pages' || m.type === 'zero-run') placer.place(m);
  });

  // A channel that closes mid-rehearsal (it should not) ends it rather than leaving it waiting.
  let waiting: { page: number; resolve: () => void; reject: (err: Error) => void } | undefined;
  const closed = Promise.all(
    [source, destination].map(
      (channel) =>
        new Promise<void>((resolve) =>
          channel.onClose(() => {
            waiting?.reject(new Error(`the rehearsal's ${channel === source ? 'source' : 'destination'} end closed`));
            resolve();
          }),
        ),
    ),
  );
  placer.onPlaced(() => {
    if (waiting && (waiting.page === WHOLE_REGION ? received.count === SCRATCH_PAGES : received.has(waiting.page))) waiting.resolve();
  });
  // One timer for the whole rehearsal, re-armed per round trip: nothing allocated per fault.
  const stall = setTimeout(() => waiting?.reject(new RehearsalStalledError(done, stallMs)), stallMs);
  let pass = 0;
  try {
    for (; done < to && !interrupted(); done++) {
      const page = (done - from) % SCRATCH_PAGES;
      if (page === 0 && done > from) {
        region.discard(0, length);
        received.clearAll();
        pass = 0;
      }
      const placed = new Promise<void>((resolve, reject) => (waiting = { page, resolve, reject }));
      // Shaped as decodeMessages() makes them, so that optimized code keeps its assumptions.
      faults.handleFault({ type: 'pagefault', address: address + page * pageSize, write: true, wp: false, threadId: REHEARSAL_THREAD_ID });
      await placed;
      stall.refresh();
      pass++;
    }
    waiting = undefined;
    // Only pages placed in this pass: reading a missing one would put this thread to sleep on itself.
    if (!samePages(region.bytes(), ram, received, pass, pageSize)) return { done, verified: false };
    if (done < to) return { done, verified: true };

    // The bulk thread's part: the whole region in runs of every length up
    // to a full frame, data and zero, lap after lap over the emptied region.
    const bulkRam = new Uint8Array(length);
    for (let p = 0; p < SCRATCH_PAGES / 2; p++) bulkRam.fill(p + 7, p * pageSize, (p + 1) * pageSize);
    const bulk = new FrameSender({ ram: bulkRam, pageSize, sent: new PageBitmap(SCRATCH_PAGES), counters });
    const window = new SendWindow(source, 4 * 1024 * 1024);
    let laps = 0;
    for (; laps < BULK_LAPS && !interrupted(); laps++) {
      region.discard(0, length);
      received.clearAll();
      const placedAll = new Promise<void>((resolve, reject) => (waiting = { page: WHOLE_REGION, resolve, reject }));
      let start = 0;
      for (const run of BULK_RUNS) {
        bulk.send(window, start, run, start >= SCRATCH_PAGES / 2, false);
        start += run;
      }
      await placedAll;
      stall.refresh();
    }
    waiting = undefined;
    // Interrupted before its first lap, the region still holds the round trips' pages, checked above.
    return { done, verified: laps === 0 || samePages(region.bytes(), bulkRam, received, SCRATCH_PAGES, pageSize) };
  } finally {
    clearTimeout(stall);
    waiting = undefined;
    source.close();
    destination.close();
    await closed;
  }
}

/** Whether the first `pages` pages were placed and hold what `sent` holds. */
function samePages(placed: Uint8Array, sent: Uint8Array, received: PageBitmap, pages: number, pageSize: number): boolean {
  for (let p = 0; p < pages; p++) {
    const at = p * pageSize;
    if (!received.has(p) || Buffer.compare(placed.subarray(at, at + pageSize), sent.subarray(at, at + pageSize)) !== 0) return false;
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
  let wanted = false;
  const over = rehearseQuietly(log, { ...options, interrupted: () => wanted });
  port.on('message', (m: M) => {
    wanted = true;
    void over.then(() => handle(m));
  });
  void over.then(rehearsed);
}

async function rehearseQuietly(log: Logger, options: RehearsalOptions): Promise<void> {
  try {
    const result = await rehearseFaultPath(log, options);
    if (result && !result.verified) log.warn('the fault-path rehearsal placed pages that differ from those sent; serving anyway');
    else if (result) log.debug({ roundTrips: result.roundTrips, ms: Math.round(result.ms), path: result.path }, 'fault path rehearsed');
  } catch (err) {
    log.warn({ err }, 'the fault-path rehearsal failed; the first faults will be slower');
  }
}

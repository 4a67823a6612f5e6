// The source's push thread rehearses the background push before a migration
// needs it, as the page threads rehearse the fault path
// (fault-path-rehearsal.ts). Cold, the first second of a 1 GiB push ran in
// V8's baseline code while TurboFan compiled the pump, FrameSender and the
// socket writes on helper threads (perf on this 2-core machine: 14% of a
// core all through the migration), time the vCPU and the page threads were
// short of. Rehearsed, that compiling happens while the source waits for a
// `migrate`.
//
// A scratch region goes through a real PushService, MigrationChannel and
// BlockingWebSocket to a sink at the other end of a socket pair, polled by
// the same loop, in runs of every length a push meets: short ones cut by
// zero pages and by pages the destination already holds, and full 64-page
// frames; with a window that fills, and a cursor that requests move.
// Whatever the rehearsal never did, V8 compiled without, and threw the code
// away (deoptimized) the first time a migration did it. The sink decodes
// what it reads and counts the pages, so a rehearsal also says whether
// every page arrived. A `migrate` ends it at once: real work comes first.
import type { Logger } from '../log.ts';
import { ramFromRegion } from '../guest/ram.ts';
import { adoptChannel } from '../protocol/channel-handoff.ts';
import type { MigrationChannel } from '../protocol/channel.ts';
import type { RamLayout } from '../protocol/layout.ts';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import type { Message, PageFrame } from '../protocol/messages.ts';
import { maxPageFrameBytes } from '../protocol/page-frame.ts';
import { SharedMigrationState } from '../protocol/shared-state.ts';
import { MAX_CONTROL_BYTES } from '../protocol/version.ts';
import { PollLoop } from '../poll-loop.ts';
import { loadNative } from '../uffd/native.ts';
import { PAGE_SIZE } from '../uffd/pages.ts';
import { allocateRegion, type GuestRegion } from '../uffd/region.ts';
import { CursorHint } from './cursor-hint.ts';
import { PageServer } from './page-server.ts';
import { attachRamBytes } from './page-thread-worker.ts';
import { PushService } from './push-service.ts';

// Half in short runs, half in full frames; 8 rounds push about 3,000 frames,
// past the point where V8 has optimized the push (its first frames never ran slower).
const PATTERN_PAGES = 2048;
// Then never-written pages, as most of a guest's RAM is: zero runs longer
// than a data frame, which the push measures in two steps.
const UNTOUCHED_PAGES = 1024;
const SCRATCH_PAGES = PATTERN_PAGES + UNTOUCHED_PAGES;
export const PUSH_REHEARSAL_ROUNDS = 8;
// A window this small fills often, so the push also rehearses waiting for the socket.
const REHEARSAL_WINDOW_BYTES = 256 * 1024;
// How often the sink plays a page request (it moves the push's cursor).
const HINT_EVERY_FRAMES = 16;
// How long a round may take (it takes milliseconds): pages that never arrive (a bug) must not hold up the thread for good.
const ROUND_WAIT_MS = 2000;
// Any plausible guest layout: the channel checks page indices against it.
const SCRATCH_RAM_BASE = 0x8000_0000;

export interface PushRehearsalResult {
  /** Rounds pushed in full; fewer than PUSH_REHEARSAL_ROUNDS if it was stopped. */
  readonly rounds: number;
  readonly pagesPushed: number;
  /** Pages the sink decoded: pagesPushed when every frame arrived. */
  readonly pagesReceived: number;
  /** Every page the sink decoded held what the scratch region did. */
  readonly verified: boolean;
  readonly ms: number;
}

/** The first word of scratch page `p`; the rest of every page is zero. */
function firstWord(p: number): number {
  if (p >= PATTERN_PAGES) return 0;
  const patterned = p < PATTERN_PAGES / 2;
  return patterned && p % 5 === 0 ? 0 : p + 1;
}

/** Writes the scratch pattern: never-written pages, written zero pages, and pages of data. */
function fillScratch(bytes: Uint8Array): void {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  for (let p = 0; p < PATTERN_PAGES; p++) {
    // Left unwritten: a zero page the pagemap tells without reading it. The
    // other zero pages are written with a zero, so populated: found by comparing.
    if (p < PATTERN_PAGES / 2 && p % 10 === 0) continue;
    words[(p * PAGE_SIZE) / 4] = firstWord(p);
  }
}

/** Whether a decoded frame holds what the scratch pattern put in its pages (the first word of each). */
function frameMatches(frame: PageFrame): boolean {
  if (frame.type === 'zero-run') {
    for (let p = frame.start; p < frame.start + frame.count; p++) if (firstWord(p) !== 0) return false;
    return true;
  }
  const view = new DataView(frame.payload.buffer, frame.payload.byteOffset, frame.payload.length);
  for (let i = 0; i < frame.count; i++) if (view.getUint32(i * PAGE_SIZE, true) !== firstWord(frame.start + i)) return false;
  return true;
}

/** Pages the "destination" already holds in alternate rounds: they cut the runs as requested pages do. */
function heldPages(): PageBitmap {
  const held = new PageBitmap(SCRATCH_PAGES);
  for (let p = 3; p < PATTERN_PAGES / 2; p += 7) held.set(p);
  return held;
}

/** Pushes the scratch region PUSH_REHEARSAL_ROUNDS times, or until `signal` aborts; closes everything it opened. */
export async function rehearsePush(log: Logger, signal: AbortSignal): Promise<PushRehearsalResult> {
  const started = performance.now();
  const native = loadNative();
  const loop = new PollLoop(log);
  const states = SharedMigrationState.holding('postcopy-active');
  let region: GuestRegion | undefined;
  let rounds = 0;
  let pagesPushed = 0;
  let pagesReceived = 0;
  let verified = true;
  try {
    region = allocateRegion(SCRATCH_PAGES * PAGE_SIZE, 'kernel');
    fillScratch(region.bytes());
    const ram = ramFromRegion(region);
    const layout: RamLayout = { pageSize: PAGE_SIZE, ramBase: SCRATCH_RAM_BASE, ramSize: region.length };
    const held = heldPages();
    const none = new PageBitmap(SCRATCH_PAGES);
    while (rounds < PUSH_REHEARSAL_ROUNDS && !signal.aborted) {
      // Objects of its own per round, as each migration has its own: V8
      // makes a field "const" until a second object of its shape is built,
      // and then throws away all code compiled on that promise. Built once
      // here, the migration's own objects did that to the whole rehearsed push.
      const server = new PageServer({ ram: region.bytes(), pageSize: PAGE_SIZE, highWaterMark: REHEARSAL_WINDOW_BYTES, log });
      const holding = rounds % 2 === 0 ? held : none;
      server.markReceived(holding);
      const wanted = SCRATCH_PAGES - holding.count;
      const [sinkFd, pushFd] = native.socketPair();
      const sink = adoptChannel({ fd: sinkFd, kind: 'bulk', role: 'destination', layout, maxPayload: maxPageFrameBytes(PAGE_SIZE) }, states, log, loop);
      let pushStopped: () => void = () => undefined;
      const closed = Promise.all([new Promise<void>((resolve) => (pushStopped = resolve)), new Promise<void>((resolve) => sink.onClose(() => resolve()))]);
      const push = new PushService(
        { ram: ram.handle, share: server.share, state: states.buffer, logLevel: log.level, ramAddress: region.address, maxPostcopyBandwidth: undefined },
        { log, ramBytes: attachRamBytes, onChannelClosed: () => undefined, onStopped: () => pushStopped() },
        loop,
      );
      push.adopt(1, { fd: pushFd, kind: 'bulk', role: 'source', layout, maxPayload: MAX_CONTROL_BYTES });
      const round = receive(sink, wanted, CursorHint.attach(server.share.cursor), signal);
      push.handle({ type: 'push' });
      const got = await round;
      push.stop(1000, 'rehearsal over');
      sink.close(1000, 'rehearsal over');
      // Both ends are polled here: their close handshake takes a turn or two, and the round leaves nothing open.
      await bounded(closed);
      pagesPushed += wanted - got.missing;
      pagesReceived += got.pages;
      verified &&= got.intact;
      if (got.missing > 0) break;
      rounds++;
    }
  } finally {
    region?.release();
  }
  return { rounds, pagesPushed, pagesReceived, verified, ms: performance.now() - started };
}

/** `wait`, or ROUND_WAIT_MS, whichever ends first. */
async function bounded(wait: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([wait, new Promise<void>((resolve) => (timer = setTimeout(resolve, ROUND_WAIT_MS)))]);
  clearTimeout(timer);
}

interface RoundResult {
  readonly pages: number;
  /** Pages not yet received when the round ended early (aborted, or past ROUND_WAIT_MS). */
  readonly missing: number;
  /** Every frame held the pattern's pages. */
  readonly intact: boolean;
}

/** Counts and checks the page frames `sink` reads until `wanted` pages arrived; moves the push's cursor as requests do. */
function receive(sink: MigrationChannel, wanted: number, hint: CursorHint, signal: AbortSignal): Promise<RoundResult> {
  return new Promise((resolve) => {
    let pages = 0;
    let frames = 0;
    let intact = true;
    const end = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', end);
      resolve({ pages, missing: wanted - pages, intact });
    };
    const timer = setTimeout(end, ROUND_WAIT_MS);
    signal.addEventListener('abort', end, { once: true });
    sink.onMessage((m: Message) => {
      if (m.type !== 'pages' && m.type !== 'zero-run') return;
      pages += m.count;
      intact &&= frameMatches(m);
      if (++frames % HINT_EVERY_FRAMES === 0) hint.set((frames * 97) % SCRATCH_PAGES);
      if (pages >= wanted) end();
    });
  });
}

/** The push thread's rehearsal: logs its outcome and never throws. */
export async function rehearsePushQuietly(log: Logger, wanted: AbortSignal): Promise<void> {
  try {
    const r = await rehearsePush(log, wanted);
    if (!r.verified || (r.rounds === PUSH_REHEARSAL_ROUNDS && r.pagesReceived !== r.pagesPushed)) {
      log.warn({ ...r }, 'the push rehearsal delivered pages other than it pushed; migrating anyway');
    } else {
      log.debug({ ...r, ms: Math.round(r.ms) }, r.rounds === PUSH_REHEARSAL_ROUNDS ? 'push rehearsed' : 'push rehearsal cut short by a migration');
    }
  } catch (err) {
    log.warn({ err }, 'the push rehearsal failed; the first second of the push will be slower');
  }
}

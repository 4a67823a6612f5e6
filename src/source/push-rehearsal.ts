// The source's main thread rehearses the background push before a migration
// needs it, as the page threads rehearse the fault path
// (fault-path-rehearsal.ts). Cold, the first second of a 1 GiB push ran in
// V8's baseline code while TurboFan compiled the pump, FrameSender, ws's
// Sender and the socket writes on helper threads (perf on this 2-core
// machine: 14% of a core all through the migration), time the vCPU and the
// page threads were short of. Rehearsed, that compiling happens while the
// source waits for a `migrate`.
//
// A scratch region goes through a real PageServer, MigrationChannel and ws
// socket to a sink on loopback, in runs of every length a push meets: short
// ones cut by zero pages and by pages the destination already holds, and
// full 64-page frames; with a window that fills, and a cursor that requests
// move. Whatever the rehearsal never did, V8 compiled without, and threw the
// code away (deoptimized) the first time a migration did it. The sink
// decodes what it reads and counts the pages, so a rehearsal also says
// whether every page arrived. A `migrate` ends it at once: real work comes
// first.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import type { Logger } from '../log.ts';
import { MigrationChannel } from '../protocol/channel.ts';
import { sourceWebSocket } from '../protocol/connect.ts';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import type { PageFrame } from '../protocol/messages.ts';
import { decodePageFrame, maxPageFrameBytes } from '../protocol/page-frame.ts';
import { PAGE_SIZE } from '../uffd/pages.ts';
import { allocateRegion, type GuestRegion } from '../uffd/region.ts';
import { CursorHint } from './cursor-hint.ts';
import { PageServer } from './page-server.ts';

// Half in short runs, half in full frames; 8 rounds push about 3,000 frames,
// past the point where V8 has optimized the push (its first frames never ran slower).
const SCRATCH_PAGES = 2048;
export const PUSH_REHEARSAL_ROUNDS = 8;
// A window this small fills often, so the push also rehearses waiting for the socket.
const REHEARSAL_WINDOW_BYTES = 256 * 1024;
// How often the sink plays a page request (it moves the push's cursor).
const HINT_EVERY_FRAMES = 16;
// How long the sink may take to read the last round once it is all sent (it takes milliseconds).
const DELIVERY_WAIT_MS = 2000;
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
  const patterned = p < SCRATCH_PAGES / 2;
  return patterned && p % 5 === 0 ? 0 : p + 1;
}

/** Writes the scratch pattern: never-written pages, written zero pages, and pages of data. */
function fillScratch(bytes: Uint8Array): void {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  for (let p = 0; p < SCRATCH_PAGES; p++) {
    // Left unwritten: a zero page the pagemap tells without reading it. The
    // other zero pages are written with a zero, so populated: found by comparing.
    if (p < SCRATCH_PAGES / 2 && p % 10 === 0) continue;
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
  for (let p = 3; p < SCRATCH_PAGES / 2; p += 7) held.set(p);
  return held;
}

interface Sink {
  readonly server: WebSocketServer;
  readonly url: string;
  pages: number;
  /** Every frame so far held the pattern's pages. */
  intact: boolean;
  /** Called after each frame the sink reads. */
  onFrame?: () => void;
}

/** A WebSocket server on loopback that decodes every page frame it reads and counts the pages. */
async function startSink(): Promise<Sink> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: maxPageFrameBytes(PAGE_SIZE) });
  await once(server, 'listening');
  const sink: Sink = { server, url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, pages: 0, intact: true };
  server.on('connection', (ws: WebSocket) => {
    ws.on('message', (data: Buffer) => {
      const frame = decodePageFrame(data, PAGE_SIZE, SCRATCH_PAGES);
      sink.pages += frame.count;
      sink.intact &&= frameMatches(frame);
      sink.onFrame?.();
    });
  });
  return sink;
}

/** Resolves once the sink has read `pages` pages, or its socket closed. */
function received(sink: Sink, pages: number, ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    sink.onFrame = () => {
      if (sink.pages >= pages) resolve();
    };
    ws.once('close', () => resolve());
    sink.onFrame();
  });
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/** Pushes the scratch region PUSH_REHEARSAL_ROUNDS times, or until `signal` aborts; closes everything it opened. */
export async function rehearsePush(log: Logger, signal: AbortSignal): Promise<PushRehearsalResult> {
  const started = performance.now();
  const sink = await startSink();
  let region: GuestRegion | undefined;
  let ws: WebSocket | undefined;
  let server: PageServer | undefined;
  let rounds = 0;
  let pagesPushed = 0;
  try {
    region = allocateRegion(SCRATCH_PAGES * PAGE_SIZE, 'kernel');
    fillScratch(region.bytes());
    // One promise for every wait below: a listener per wait would pile up on the signal.
    const stopped = aborted(signal);
    ws = sourceWebSocket(sink.url, 'bulk');
    await Promise.race([once(ws, 'open'), stopped]);
    const channel = new MigrationChannel(ws, { kind: 'bulk', role: 'source', state: () => 'postcopy-active', log });
    channel.established({ pageSize: PAGE_SIZE, ramBase: SCRATCH_RAM_BASE, ramSize: region.length });
    const held = heldPages();
    const none = new PageBitmap(SCRATCH_PAGES);
    while (rounds < PUSH_REHEARSAL_ROUNDS && !signal.aborted) {
      // A page server per round, as each migration has its own: V8 makes a
      // field "const" until a second object of its shape is built, and then
      // throws away all code compiled on that promise. Built once here, the
      // migration's own server did that to the whole rehearsed push.
      server?.stop();
      const push = new PageServer({ ram: region.bytes(), ramAddress: region.address, pageSize: PAGE_SIZE, highWaterMark: REHEARSAL_WINDOW_BYTES, log });
      server = push;
      push.attach({ control: channel, bulk: channel });
      // As requested pages do, moving the push's cursor so its scan wraps around.
      const hint = CursorHint.attach(push.requestShare.cursor);
      let frames = 0;
      sink.onFrame = () => {
        if (++frames % HINT_EVERY_FRAMES === 0) hint.set((frames * 97) % SCRATCH_PAGES);
      };
      const holding = rounds % 2 === 0 ? held : none;
      push.markReceived(holding);
      await Promise.race([new Promise<void>((resolve) => push.startPush(resolve)), stopped]);
      if (signal.aborted) break;
      pagesPushed += SCRATCH_PAGES - holding.count;
      rounds++;
    }
    // Bounded: pages that never arrive (a bug) must not hold the sockets open for good.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, DELIVERY_WAIT_MS)));
    await Promise.race([received(sink, pagesPushed, ws), stopped, late]);
    clearTimeout(timer);
  } finally {
    server?.stop();
    ws?.terminate();
    sink.server.close();
    region?.release();
  }
  return { rounds, pagesPushed, pagesReceived: sink.pages, verified: sink.intact, ms: performance.now() - started };
}

/** A push rehearsal under way: `abort()` ends it early; `over` resolves once it ended, however. */
export interface PushRehearsal {
  abort(): void;
  readonly over: Promise<void>;
}

/** Starts a rehearsal that logs its outcome and never throws. */
export function startPushRehearsal(log: Logger): PushRehearsal {
  const controller = new AbortController();
  const over = rehearsePush(log, controller.signal).then(
    (r) => {
      if (!r.verified || (r.rounds === PUSH_REHEARSAL_ROUNDS && r.pagesReceived !== r.pagesPushed)) {
        log.warn({ ...r }, 'the push rehearsal delivered pages other than it pushed; migrating anyway');
      } else {
        log.debug({ ...r, ms: Math.round(r.ms) }, r.rounds === PUSH_REHEARSAL_ROUNDS ? 'push rehearsed' : 'push rehearsal cut short by a migration');
      }
    },
    (err: unknown) => log.warn({ err }, 'the push rehearsal failed; the first second of the push will be slower'),
  );
  return { abort: () => controller.abort(), over };
}

// The postcopy push (bulk-push.ts) on a scheduler and a channel the test
// drives: it never has more than the window's high-water mark (plus one
// frame) unwritten, sends every page exactly once in runs that skip what
// the destination holds, follows the cursor that requests leave, and a cap
// lifted while it waits for credit goes on at once.
import { describe, expect, it } from 'vitest';
import { PageBitmap } from '../../src/protocol/page-bitmap.ts';
import { decodePageFrame, PAGE_FRAME_HEADER_BYTES } from '../../src/protocol/page-frame.ts';
import { BulkPush } from '../../src/source/bulk-push.ts';
import { CursorHint } from '../../src/source/cursor-hint.ts';
import { FrameSender } from '../../src/source/frame-sender.ts';
import { SendWindow } from '../../src/source/send-window.ts';
import { TransferCounters } from '../../src/source/transfer-counters.ts';

const PAGE = 4096;
const PAGES = 1024;
const MAX_PAGES = 16;

interface Rig {
  readonly push: BulkPush;
  readonly window: SendWindow;
  readonly sent: PageBitmap;
  readonly cursor: CursorHint;
  /** Frames handed to the channel, decoded; `written()` reports the oldest unwritten ones written. */
  readonly frames: { start: number; count: number; zero: boolean }[];
  written(frames?: number): void;
  /** Runs the scheduled pumps due now (delay 0), as the event loop would; returns how many ran. */
  turn(): number;
  /** Delays the push asked to wait, in order. */
  readonly waits: number[];
}

function rig(options: { highWaterMark: number; maxPostcopyBandwidth?: number }): Rig {
  const ram = new Uint8Array(PAGES * PAGE);
  // Every fifth page zero, the rest data.
  for (let p = 0; p < PAGES; p++) if (p % 5 !== 0) ram[p * PAGE + 7] = 1;
  const sent = new PageBitmap(PAGES);
  const counters = new TransferCounters();
  const cursor = new CursorHint();
  const frames: Rig['frames'] = [];
  const pending: (() => void)[] = [];
  const window = new SendWindow(
    {
      open: true,
      writesParts: false,
      sendBytes(bytes, cb) {
        const f = decodePageFrame(bytes, PAGE, PAGES);
        frames.push({ start: f.start, count: f.count, zero: f.type === 'zero-run' });
        pending.push(() => cb?.());
      },
      sendParts() {
        throw new Error('not a page thread socket');
      },
    },
    options.highWaterMark,
  );
  const due: (() => void)[] = [];
  const waits: number[] = [];
  const push = new BulkPush({
    frames: new FrameSender({ ram, pageSize: PAGE, sent, counters }),
    sent,
    cursor,
    counters,
    pageCount: PAGES,
    maxPagesPerFrame: MAX_PAGES,
    maxZeroRunPages: 64,
    largestFrame: PAGE_FRAME_HEADER_BYTES + MAX_PAGES * PAGE,
    framesPerTurn: 4,
    maxPostcopyBandwidth: options.maxPostcopyBandwidth,
    later: (task, delayMs) => {
      if (delayMs > 0) waits.push(delayMs);
      else due.push(task);
    },
  });
  push.attach(window);
  return {
    push,
    window,
    sent,
    cursor,
    frames,
    waits,
    written: (n = pending.length) => {
      for (const cb of pending.splice(0, n)) cb();
    },
    turn: () => {
      const tasks = due.splice(0);
      for (const task of tasks) task();
      return tasks.length;
    },
  };
}

describe('the postcopy push', () => {
  it('stops at the high-water mark until frames are written, and sends every page not held exactly once', () => {
    const highWaterMark = 3 * MAX_PAGES * PAGE;
    const r = rig({ highWaterMark });
    // Held by the destination already: the push skips them, cutting runs.
    for (const p of [3, 4, 100, 513]) r.sent.set(p);
    let allSent = false;
    r.push.start(() => (allSent = true));
    let highest = 0;
    for (let i = 0; i < 10_000 && !allSent; i++) {
      if (r.turn() === 0) r.written(1);
      highest = Math.max(highest, r.window.queuedBytes);
    }
    expect(allSent).toBe(true);
    expect(highest).toBeGreaterThan(0);
    expect(highest).toBeLessThanOrEqual(highWaterMark + PAGE_FRAME_HEADER_BYTES + MAX_PAGES * PAGE);
    const times = new Array<number>(PAGES).fill(0);
    for (const f of r.frames) {
      for (let p = f.start; p < f.start + f.count; p++) {
        times[p]++;
        expect(p % 5 === 0).toBe(f.zero);
      }
      expect(f.count).toBeLessThanOrEqual(f.zero ? 64 : MAX_PAGES);
    }
    const wrong = times.map((n, p) => ([3, 4, 100, 513].includes(p) ? n !== 0 : n !== 1)).flatMap((bad, p) => (bad ? [p] : []));
    expect(wrong).toEqual([]);
  });

  it('goes on just after the last requested page', () => {
    const r = rig({ highWaterMark: 1 << 30 });
    r.push.start();
    r.turn();
    expect(r.frames[0].start).toBe(0);
    r.cursor.set(700);
    const before = r.frames.length;
    r.turn();
    expect(r.frames[before].start).toBe(700);
  });

  it('waits out its cap, and goes on at once when the cap is lifted meanwhile', () => {
    const r = rig({ highWaterMark: 1 << 30, maxPostcopyBandwidth: 100_000 });
    r.push.start();
    while (r.turn() > 0 && r.waits.length === 0);
    expect(r.waits).toHaveLength(1);
    expect(r.waits[0]).toBeGreaterThan(0);
    const sentWhileCapped = r.frames.length;
    expect(sentWhileCapped).toBeLessThan(PAGES / MAX_PAGES);
    r.push.setMaxPostcopyBandwidth(undefined);
    let turns = 0;
    while (r.turn() > 0) turns++;
    expect(turns).toBeGreaterThan(0);
    expect(r.sent.count).toBe(PAGES);
    expect(r.waits).toHaveLength(1);
  });
});

import { describe, expect, it, vi } from 'vitest';
import { PageBitmap } from '../../src/protocol/page-bitmap.ts';
import { decodePageFrame, PAGE_FRAME_HEADER_BYTES } from '../../src/protocol/page-frame.ts';
import { FrameSender } from '../../src/source/frame-sender.ts';
import { PopulatedPages } from '../../src/source/populated-pages.ts';
import { SendWindow } from '../../src/source/send-window.ts';
import { TransferCounters } from '../../src/source/transfer-counters.ts';
import { loadNative, nativeAvailable } from '../../src/uffd/native.ts';
import { allocateRegion } from '../../src/uffd/region.ts';

const PAGE = 4096;

describe.skipIf(!nativeAvailable())('zero pages of private anonymous RAM (pagemap)', () => {
  it('knows an untouched page is zero without reading it, and compares every page that was populated', () => {
    const region = allocateRegion(8 * PAGE, 'kernel');
    try {
      const ram = region.bytes();
      ram[1 * PAGE + 100] = 1; // populated, not zero
      ram[2 * PAGE + 7] = 1; // populated, then zeroed again
      ram[2 * PAGE + 7] = 0;
      void ram[3 * PAGE]; // read only: the shared zero page is mapped there
      ram.fill(9, 4 * PAGE, 5 * PAGE);
      region.discard(4 * PAGE, PAGE); // discarded: reads as zero again
      const populated = PopulatedPages.open(region.address, 8, PAGE)!;
      expect([0, 1, 2, 3, 4].map((p) => populated.mayHoldData(p))).toEqual([false, true, true, true, false]);

      const frames = new FrameSender({ ram, pageSize: PAGE, sent: new PageBitmap(8), counters: new TransferCounters(), populated });
      expect([0, 1, 2, 3, 4, 5].map((p) => frames.isZero(p))).toEqual([true, false, true, true, true, true]);
      // Told apart without a read: reading would have mapped the zero page there.
      populated.refresh();
      expect(populated.mayHoldData(0)).toBe(false);
      expect(populated.mayHoldData(5)).toBe(false);
      populated.close();
    } finally {
      region.release();
    }
  });

  it('answers from its last read until refreshed', () => {
    const region = allocateRegion(4 * PAGE, 'kernel');
    try {
      const populated = PopulatedPages.open(region.address, 4, PAGE)!;
      expect(populated.mayHoldData(2)).toBe(false);
      region.bytes()[2 * PAGE] = 5;
      expect(populated.mayHoldData(2)).toBe(false);
      populated.refresh();
      expect(populated.mayHoldData(2)).toBe(true);
      populated.close();
      // Closed: nothing is known, every page is compared.
      expect(populated.mayHoldData(0)).toBe(true);
    } finally {
      region.release();
    }
  });
});

describe.skipIf(!nativeAvailable())('runs of zero and data pages', () => {
  // A page with one non-zero byte, at each place a scan could miss it.
  const MARKS = [0, 7, 63, 64, 2047, 4032, PAGE - 1];

  /** Pages whose kind is drawn from `rng`: 0 never touched, 1 written with zeros, 2 holding one non-zero byte. */
  function layout(pages: number, rng: () => number): number[] {
    const kinds: number[] = [];
    while (kinds.length < pages) {
      const kind = Math.floor(rng() * 3);
      const length = 1 + Math.floor(rng() * 80);
      for (let i = 0; i < length && kinds.length < pages; i++) kinds.push(kind);
    }
    return kinds;
  }

  /** The runs a sender makes of the whole RAM, as [start, signed count]. */
  function runs(frames: FrameSender, pages: number, maxData: number, maxZero: number): [number, number][] {
    const out: [number, number][] = [];
    for (let p = 0; p < pages; ) {
      const left = pages - p;
      const run = frames.run(p, Math.min(maxData, left), Math.min(maxZero, left));
      out.push([p, run]);
      p += Math.abs(run);
    }
    return out;
  }

  it('the addon finds a non-zero byte anywhere in a page and stops each run at the first page unlike its first', () => {
    const pages = MARKS.length * 2 + 4;
    const region = allocateRegion(pages * PAGE, 'kernel');
    try {
      const ram = region.bytes();
      MARKS.forEach((at, i) => (ram[(2 * i + 1) * PAGE + at] = 0x80));
      const native = loadNative();
      const run = (page: number, maxData: number, maxZero: number): number => native.zeroRun(region.address + page * PAGE, PAGE, maxData, maxZero);
      MARKS.forEach((_, i) => {
        expect(run(2 * i, 8, 8)).toBe(-1);
        expect(run(2 * i + 1, 8, 8)).toBe(1);
      });
      ram.fill(1, 0, 3 * PAGE);
      expect(run(0, 8, 8)).toBe(4); // pages 0–2 filled, and page 3 holds a mark
      expect(run(0, 2, 8)).toBe(2);
      // The addon cannot see where the mapping ends: every call here stays inside it.
      expect(run(pages - 4, 4, 4)).toBe(-4);
      expect(run(pages - 4, 4, 3)).toBe(-3);
      expect(() => native.zeroRun(region.address, 100, 1, 1)).toThrow(/zeroRun/);
    } finally {
      region.release();
    }
  });

  it('are refused before the addon reads, when they would leave RAM', () => {
    const pages = 8;
    const region = allocateRegion(pages * PAGE, 'kernel');
    try {
      const base = { ram: region.bytes(), pageSize: PAGE, sent: new PageBitmap(pages), counters: new TransferCounters() };
      for (const frames of [new FrameSender(base), new FrameSender({ ...base, ramAddress: region.address })]) {
        expect(frames.run(pages - 4, 4, 4)).toBe(-4);
        expect(() => frames.run(pages - 4, 8, 8)).toThrow(RangeError);
        expect(() => frames.run(pages - 4, 4, 5)).toThrow(/leaves RAM of 8 pages/);
        expect(() => frames.run(pages, 1, 1)).toThrow(RangeError);
        expect(() => frames.run(-1, 1, 1)).toThrow(RangeError);
        expect(frames.isZero(pages - 1)).toBe(true);
      }
    } finally {
      region.release();
    }
  });

  it('are the same whether the addon reads them or JavaScript compares them, and right with the pagemap too', () => {
    let seed = 7;
    const rng = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pages = 700;
    for (let round = 0; round < 4; round++) {
      const region = allocateRegion(pages * PAGE, 'kernel');
      try {
        const ram = region.bytes();
        const kinds = layout(pages, rng);
        kinds.forEach((kind, p) => {
          if (kind === 1) ram.fill(0, p * PAGE, (p + 1) * PAGE);
          if (kind === 2) ram[p * PAGE + MARKS[Math.floor(rng() * MARKS.length)]] = 1 + Math.floor(rng() * 255);
        });
        const populated = PopulatedPages.open(region.address, pages, PAGE)!;
        const base = { ram, pageSize: PAGE, sent: new PageBitmap(pages), counters: new TransferCounters() };
        const compared = runs(new FrameSender(base), pages, 64, 1024);
        const scanned = runs(new FrameSender({ ...base, ramAddress: region.address }), pages, 64, 1024);
        expect(scanned).toEqual(compared);
        // Each run is what its pages are, and no two runs of one kind meet unless a bound split them.
        for (const [start, run] of compared) {
          const data = kinds.slice(start, start + Math.abs(run)).map((k) => k === 2);
          expect(data.every((d) => d === run > 0)).toBe(true);
        }
        // With the pagemap, runs may split where touched zero pages meet untouched ones; each is still right.
        for (const frames of [new FrameSender({ ...base, populated }), new FrameSender({ ...base, populated, ramAddress: region.address })]) {
          const withMap = runs(frames, pages, 64, 1024);
          for (const [start, run] of withMap) {
            const data = kinds.slice(start, start + Math.abs(run)).map((k) => k === 2);
            expect(data.every((d) => d === run > 0)).toBe(true);
            expect(Math.abs(run)).toBeLessThanOrEqual(run > 0 ? 64 : 1024);
          }
        }
        populated.close();
      } finally {
        region.release();
      }
    }
  });
});

describe('frame buffers', () => {
  it('are sized to the run in powers of two pages, reused once written, and carry the pages they were given', () => {
    const pages = 64;
    const ram = new Uint8Array(pages * PAGE);
    for (let p = 0; p < pages; p++) ram.fill(p + 1, p * PAGE, (p + 1) * PAGE);
    const pending: (() => void)[] = [];
    const sent: Uint8Array[] = [];
    const window = new SendWindow(
      {
        open: true,
        writesParts: false,
        sendBytes(bytes, cb) {
          sent.push(Uint8Array.from(bytes));
          pending.push(() => cb?.());
        },
        sendParts() {
          throw new Error('a sink that copies gets whole frames');
        },
      },
      1 << 30,
    );
    const frames = new FrameSender({ ram, pageSize: PAGE, sent: new PageBitmap(pages), counters: new TransferCounters() });
    const allocations = vi.spyOn(Buffer, 'allocUnsafeSlow');
    const runs: [number, number][] = [[0, 1], [1, 1], [2, 3], [5, 4], [9, 33]];
    for (const [start, count] of runs) frames.send(window, start, count, false, false);
    expect(allocations.mock.calls.map(([bytes]) => (bytes - PAGE_FRAME_HEADER_BYTES) / PAGE)).toEqual([1, 1, 4, 4, 64]);
    for (const written of pending.splice(0)) written();
    for (const [start, count] of runs) frames.send(window, start + 10, count, false, false);
    expect(allocations).toHaveBeenCalledTimes(5);
    allocations.mockRestore();
    [...runs, ...runs.map(([s, c]): [number, number] => [s + 10, c])].forEach(([start, count], i) => {
      const frame = decodePageFrame(sent[i], PAGE, pages);
      expect(frame).toMatchObject({ type: 'pages', start, count });
      if (frame.type !== 'pages') return;
      expect(Buffer.compare(frame.payload, ram.subarray(start * PAGE, (start + count) * PAGE))).toBe(0);
    });
  });

  it('go unused on a sink that writes parts: the pages go from RAM itself, under a header, and are counted as sent', () => {
    const pages = 8;
    const ram = new Uint8Array(pages * PAGE);
    for (let p = 0; p < pages; p++) ram.fill(p + 1, p * PAGE, (p + 1) * PAGE);
    const frames: (readonly Uint8Array[])[] = [];
    const window = new SendWindow(
      {
        open: true,
        writesParts: true,
        sendBytes() {
          throw new Error('a sink that writes parts gets data frames in parts');
        },
        sendParts(parts) {
          frames.push(parts);
        },
      },
      1 << 30,
    );
    const sent = new PageBitmap(pages);
    const counters = new TransferCounters();
    const sender = new FrameSender({ ram, pageSize: PAGE, sent, counters });
    const allocations = vi.spyOn(Buffer, 'allocUnsafeSlow');
    const bytes = sender.send(window, 2, 3, false, false);
    expect(allocations).not.toHaveBeenCalled();
    allocations.mockRestore();
    expect(frames).toHaveLength(1);
    const [header, payload] = frames[0];
    // The very bytes of RAM, not a copy of them.
    expect(payload.buffer).toBe(ram.buffer);
    expect(payload.byteOffset).toBe(2 * PAGE);
    expect(bytes).toBe(header.length + payload.length);
    expect(window.queuedBytes).toBe(bytes);
    const frame = decodePageFrame(Buffer.concat([header, payload]), PAGE, pages);
    expect(frame).toMatchObject({ type: 'pages', start: 2, count: 3 });
    expect([1, 2, 3, 4, 5].map((p) => sent.has(p))).toEqual([false, true, true, true, false]);
    expect(counters.read()).toMatchObject({ normalPages: 3, transferredBytes: bytes });
  });
});

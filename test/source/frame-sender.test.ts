import { describe, expect, it, vi } from 'vitest';
import { PageBitmap } from '../../src/protocol/page-bitmap.ts';
import { decodePageFrame, PAGE_FRAME_HEADER_BYTES } from '../../src/protocol/page-frame.ts';
import { FrameSender } from '../../src/source/frame-sender.ts';
import { PopulatedPages } from '../../src/source/populated-pages.ts';
import { SendWindow } from '../../src/source/send-window.ts';
import { TransferCounters } from '../../src/source/transfer-counters.ts';
import { nativeAvailable } from '../../src/uffd/native.ts';
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

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { DirtyLog } from '../../src/guest/dirty-log.ts';
import { Machine } from '../../src/guest/machine.ts';
import type { RamOffset } from '../../src/guest/memory-map.ts';
import { asm, finishPass, li, reg, storeWord, tinyGuest } from './helpers/tiny-guest.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-dirty-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const RAM = 16 * 1024 * 1024;
const BLOCK = 0x1020_0000;

/** Rings the block device: command 1 = disk -> RAM, 2 = RAM -> disk; stores STATUS at `statusAt`. */
function dma(command: number, sector: number, addr: number, len: number, statusAt: number): number[] {
  return [
    ...storeWord(BLOCK + 0x04, sector),
    ...storeWord(BLOCK + 0x08, addr),
    ...storeWord(BLOCK + 0x0c, len),
    ...storeWord(BLOCK + 0x10, command),
    ...li(reg.t0, BLOCK),
    asm.lw(reg.a0, reg.t0, 0x14),
    ...li(reg.t1, statusAt),
    asm.sw(reg.t1, reg.a0, 0),
  ];
}

describe('dirty log', () => {
  it('fetch-and-clear returns each marked page once, in order', () => {
    const log = new DirtyLog(RAM);
    log.markRange(0x5000 as RamOffset, 1);
    log.markRange(0x1fff as RamOffset, 2);
    log.bytes[4095] = 1;
    expect(log.count()).toBe(4);
    expect(log.fetchAndClear()).toEqual([1, 2, 5, 4095]);
    expect(log.fetchAndClear()).toEqual([]);
  });

  it('marks exactly the pages written by vCPU stores and by disk -> RAM DMA, not loads or RAM -> disk', async () => {
    const program = [
      ...storeWord(0x8001_0000, 0x11111111),
      ...li(reg.t0, 0x8012_3456),
      asm.sb(reg.t0, reg.t0, 0),
      ...storeWord(0x80ff_c000, 7),
      ...li(reg.t0, 0x8040_0000),
      asm.lw(reg.a1, reg.t0, 0),
      ...dma(1, 0, 0x8020_0800, 8192, 0x8001_0004),
      ...dma(2, 16, 0x8030_0000, 4096, 0x8001_0008),
      ...dma(1, 0, 0x8050_0000, 100, 0x8001_000c),
      ...finishPass(),
    ];
    const disk = path.join(tmp, 'disk.img');
    fs.writeFileSync(disk, Buffer.alloc(1 << 20, 0xab));
    const machine = Machine.create({ image: tinyGuest(program), ramSize: RAM, disk });
    try {
      machine.boot();
      expect(machine.fetchAndClearDirty()).toEqual([0]);
      await machine.runUntil(Infinity);
      expect(machine.exit?.status).toBe('pass');
      expect(machine.fetchAndClearDirty()).toEqual([0x10, 0x123, 0x200, 0x201, 0x202, 0xffc]);
      const ram = machine.ram.bytes();
      const status = new DataView(ram.buffer, ram.byteOffset + 0x1_0000);
      expect([status.getUint32(4, true), status.getUint32(8, true), status.getUint32(12, true)]).toEqual([0, 0, 2]);
      expect(ram.subarray(0x20_0800, 0x20_2800).every((b) => b === 0xab)).toBe(true);
      expect(ram[0x20_07ff]).toBe(0);
      expect(ram[0x20_2800]).toBe(0);
    } finally {
      await machine.close();
    }
  });
});

describe('dirty log runs', () => {
  it('fetch-and-clear as runs covers exactly the marked pages, in ascending maximal runs, and clears them', () => {
    fc.assert(
      // One flag per page, so that long runs, gaps of one and word edges all come up.
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 300 }), (flags) => {
        const log = new DirtyLog(flags.length * 4096);
        const pages = flags.flatMap((dirty, p) => (dirty ? [p] : []));
        for (const p of pages) log.bytes[p] = 1;
        const runs = log.fetchAndClearRuns();
        const covered: number[] = [];
        for (let i = 0; i < runs.length; i += 2) {
          expect(runs[i + 1]).toBeGreaterThan(0);
          // Maximal: a run never starts where the previous one ended.
          if (i > 0) expect(runs[i]).toBeGreaterThan(runs[i - 2] + runs[i - 1]);
          for (let p = runs[i]; p < runs[i] + runs[i + 1]; p++) covered.push(p);
        }
        expect(covered).toEqual(pages);
        expect(log.count()).toBe(0);
      }),
    );
  });
});

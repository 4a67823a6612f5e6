// Guest RAM registered with a userfaultfd, as on a migration destination: a
// vCPU that touches a missing page sleeps until the page is placed and goes on
// with the placed bytes, while the other vCPUs keep running; block-device DMA
// (a real syscall on guest RAM) into a missing page is served through
// /dev/userfaultfd and, under UFFD_USER_MODE_ONLY, fails with EFAULT, which
// the guest sees as an I/O error.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openPath, type AccessPath, type PagefaultEvent, type Userfaultfd } from '../../src/uffd/index.ts';
import { allocateRegion, type Backend, type GuestRegion } from '../../src/uffd/region.ts';
import { Machine } from '../../src/guest/machine.ts';
import { PAGE_SIZE } from '../../src/guest/memory-map.ts';
import { asm, finishPass, li, reg, storeWord, tinyGuest } from './helpers/tiny-guest.ts';

const RAM = 16 * 1024 * 1024;
const BLOCK = 0x1020_0000;
const UART = 0x1000_0000;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-uffd-ram-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Why `accessPath` cannot be used here, or undefined. */
function unavailable(accessPath: AccessPath): string | undefined {
  try {
    openPath(accessPath).close();
    return undefined;
  } catch (err) {
    return `userfaultfd access path ${accessPath} unavailable: ${(err as Error).message}`;
  }
}

const reasons = new Map<AccessPath, string | undefined>(
  (['dev', 'syscall-user-mode-only', 'sim'] as const).map((p) => [p, unavailable(p)]),
);
for (const [p, why] of reasons) if (why) console.warn(`skipping ${p} cases: ${why}`);

/** Loads the word at `from`, stores it at `to`, then rings disk -> RAM into `dmaTo` and RAM -> disk from `dmaFrom`. */
function program(from: number, to: number, dma?: { into: number; outOf: number; statusAt: number }): number[] {
  const words = [...li(reg.t0, from), asm.lw(reg.a0, reg.t0, 0), ...li(reg.t1, to), asm.sw(reg.t1, reg.a0, 0)];
  if (dma) {
    for (const [command, addr, sector, slot] of [[1, dma.into, 0, 0], [2, dma.outOf, 8, 8]] as const) {
      words.push(
        ...storeWord(BLOCK + 0x04, sector),
        ...storeWord(BLOCK + 0x08, addr),
        ...storeWord(BLOCK + 0x0c, PAGE_SIZE),
        ...storeWord(BLOCK + 0x10, command),
        ...li(reg.t0, BLOCK),
        asm.lw(reg.a0, reg.t0, 0x14),
        asm.lw(reg.a1, reg.t0, 0x1c),
        ...li(reg.t1, dma.statusAt + slot),
        asm.sw(reg.t1, reg.a0, 0),
        asm.sw(reg.t1, reg.a1, 4),
      );
    }
  }
  return [...words, ...finishPass()];
}

/** Hart 0 runs `program(from, to)`; every other hart prints the digit of its id on the UART and halts. */
function hartZeroCopiesOthersPrint(from: number, to: number): number[] {
  const zero = program(from, to);
  const others = [...li(reg.t0, UART), asm.addi(reg.t1, reg.a0, 0x30), asm.sb(reg.t0, reg.t1, 0), asm.wfi(), asm.j(-4)];
  return [asm.bne(reg.a0, reg.zero, (zero.length + 1) * 4), ...zero, ...others];
}

interface Booted {
  machine: Machine;
  uffd: Userfaultfd;
  region: GuestRegion;
  /** Region offsets of every page fault, in arrival order. */
  faults: number[];
}

/** Boots `words` into fresh RAM (so those pages are present), then registers all of RAM. */
function bootRegistered(backend: Backend, accessPath: AccessPath, words: number[], options: { disk?: string; vcpus?: number } = {}): Booted {
  const region = allocateRegion(RAM, backend);
  const machine = Machine.create({ image: tinyGuest(words), ramSize: RAM, region, ...options });
  machine.boot();
  const uffd = openPath(accessPath);
  uffd.register(region.address, region.length);
  return { machine, uffd, region, faults: [] };
}

/** Records each fault and hands its page to `resolve`, which must place it (now or later). */
function serveFaults(b: Booted, resolve: (offset: number) => void): void {
  b.uffd.on('events', (batch) => {
    for (const event of batch) {
      if (event.type !== 'pagefault') continue;
      const offset = (event as PagefaultEvent).address - b.region.address;
      b.faults.push(offset);
      resolve(offset);
    }
  });
}

/** Pages in `pages` get their bytes after a delay (so the vCPU really waits); others zeros. */
function placeLater(b: Booted, pages: Map<number, Uint8Array>): (offset: number) => void {
  return (offset) => {
    const bytes = pages.get(offset);
    if (bytes) setTimeout(() => b.uffd.copy(b.region.address + offset, bytes), 30);
    else b.uffd.zeropage(b.region.address + offset, PAGE_SIZE);
  };
}

/** Starts the machine and waits for the guest to finish (a failed vCPU fails the test at once). */
async function runToFinish(machine: Machine): Promise<void> {
  const finished = new Promise<void>((resolve, reject) => {
    machine.once('finished', () => resolve());
    machine.once('failed', reject);
  });
  await machine.start();
  await finished;
  await machine.pause();
}

async function release(b: Booted): Promise<void> {
  await b.machine.close();
  // Most of RAM was never needed: unregistered first, closing is not an abort.
  b.uffd.unregister(b.region.address, b.region.length);
  b.uffd.close();
  b.region.release();
}

function word(b: Booted, offset: number): number {
  const ram = b.region.bytes();
  return new DataView(ram.buffer, ram.byteOffset).getUint32(offset, true);
}

const cases: [Backend, AccessPath][] = [['kernel', 'dev'], ['sim', 'sim']];

describe('guest RAM behind a userfaultfd', () => {
  const placed = new Uint8Array(PAGE_SIZE);
  new DataView(placed.buffer).setUint32(0x10, 0xcafe_f00d, true);

  for (const [backend, accessPath] of cases) {
    it.skipIf(reasons.get(accessPath) !== undefined)(`${backend} (${accessPath}): a vCPU touching a missing page sleeps until it is placed, then reads the placed bytes`, async () => {
      const b = bootRegistered(backend, accessPath, program(0x8010_0010, 0x8020_0000));
      try {
        serveFaults(b, placeLater(b, new Map([[0x10_0000, placed]])));
        await runToFinish(b.machine);
        expect(b.machine.exit?.status).toBe('pass');
        expect(b.faults).toContain(0x10_0000);
        expect(b.faults).toContain(0x20_0000);
        // The image was written before registration: populated, as the kernel keeps it.
        expect(b.faults).not.toContain(0);
        expect(word(b, 0x20_0000)).toBe(0xcafe_f00d);
      } finally {
        await release(b);
      }
    });
  }

  for (const [backend, accessPath] of cases) {
    it.skipIf(reasons.get(accessPath) !== undefined)(`${backend} (${accessPath}): with 4 vCPUs, one asleep on a missing page does not stop the others`, async () => {
      const b = bootRegistered(backend, accessPath, hartZeroCopiesOthersPrint(0x8010_0010, 0x8020_0000), { vcpus: 4 });
      const others = [1, 2, 3];
      // Harts 1-3 start held at time 0, and are let go only once hart 0 is
      // asleep on its fault; its page is placed only after all three have
      // printed. Were they stopped by its sleep, the guest could never finish.
      for (const h of others) b.machine.setStopAt(0, h);
      let printedBeforePlacement = '';
      try {
        serveFaults(b, (offset) => {
          if (offset !== 0x10_0000) {
            b.uffd.zeropage(b.region.address + offset, PAGE_SIZE);
            return;
          }
          const placeOnceAllPrinted = (): void => {
            if (b.machine.consoleText().length < others.length) return;
            b.machine.off('console', placeOnceAllPrinted);
            printedBeforePlacement = b.machine.consoleText();
            b.uffd.copy(b.region.address + offset, placed);
          };
          b.machine.on('console', placeOnceAllPrinted);
          for (const h of others) b.machine.setStopAt(Infinity, h);
        });
        await runToFinish(b.machine);
        expect(b.machine.exit?.status).toBe('pass');
        expect([...printedBeforePlacement].sort().join('')).toBe('123');
        expect(word(b, 0x20_0000)).toBe(0xcafe_f00d);
      } finally {
        await release(b);
      }
    });
  }

  const dmaPages = { into: 0x8030_0000, outOf: 0x8031_0000, statusAt: 0x8020_0000 };
  const outOfBytes = new Uint8Array(PAGE_SIZE).fill(0x5a);
  const diskBytes = Buffer.alloc(64 * 1024, 0xc3);

  for (const [backend, accessPath] of cases) {
    it.skipIf(reasons.get(accessPath) !== undefined)(`${backend} (${accessPath}): block-device DMA into and out of missing pages is served`, async () => {
      const disk = path.join(tmp, `served-${backend}.img`);
      fs.writeFileSync(disk, diskBytes);
      const b = bootRegistered(backend, accessPath, program(0x8010_0000, 0x8020_0100, dmaPages), { disk });
      try {
        serveFaults(b, placeLater(b, new Map([[0x31_0000, outOfBytes]])));
        await runToFinish(b.machine);
        expect(b.machine.exit?.status).toBe('pass');
        expect([word(b, 0x20_0000), word(b, 0x20_0008)]).toEqual([0, 0]);
        expect(b.faults).toEqual(expect.arrayContaining([0x30_0000, 0x31_0000]));
        expect(b.region.bytes().subarray(0x30_0000, 0x30_1000).every((x) => x === 0xc3)).toBe(true);
        expect(fs.readFileSync(disk).subarray(8 * 512, 8 * 512 + PAGE_SIZE).every((x) => x === 0x5a)).toBe(true);
      } finally {
        await release(b);
      }
    });
  }

  it.skipIf(reasons.get('syscall-user-mode-only') !== undefined)('kernel (UFFD_USER_MODE_ONLY): DMA on a missing page fails with EFAULT, reported to the guest as an I/O error', async () => {
    const disk = path.join(tmp, 'user-mode-only.img');
    fs.writeFileSync(disk, diskBytes);
    const b = bootRegistered('kernel', 'syscall-user-mode-only', program(0x8010_0000, 0x8020_0100, dmaPages), { disk });
    try {
      serveFaults(b, placeLater(b, new Map()));
      await runToFinish(b.machine);
      expect(b.machine.exit?.status).toBe('pass');
      // STATUS 1 (I/O error), ERRNO 14 (EFAULT) for disk -> RAM and for RAM -> disk.
      expect([word(b, 0x20_0000), word(b, 0x20_0004)]).toEqual([1, 14]);
      expect([word(b, 0x20_0008), word(b, 0x20_000c)]).toEqual([1, 14]);
      // The kernel refused the syscall instead of reporting a fault: the pages stay missing.
      expect(b.faults).not.toContain(0x30_0000);
      expect(b.faults).not.toContain(0x31_0000);
    } finally {
      await release(b);
    }
  });
});

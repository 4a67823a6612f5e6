// Guest instructions per second of the whole machine, as `postcopy run` runs
// it (vCPU worker thread, devices, run slices, pause/stop checks), on memwork
// with one vCPU. Guest RAM is a region registered with a userfaultfd, every
// page present (a destination after postcopy has placed everything): through
// /dev/userfaultfd on the kernel backend, and the software backend. The same
// machine on plain shared memory, no userfaultfd, is measured in the same run
// as the reference each is a ratio of. bench/mips.ts measures the vCPU core
// alone, with the interpreter as its floor. Never passes or fails.
//
//   node --import tsx bench/guest-mips.ts [seconds-per-figure]
import { performance } from 'node:perf_hooks';
import { readGuestImage } from '../src/guest/guest-images.ts';
import { Machine } from '../src/guest/machine.ts';
import { PAGE_SIZE } from '../src/guest/memory-map.ts';
import { openPath, type Userfaultfd } from '../src/uffd/index.ts';
import { allocateRegion, type GuestRegion } from '../src/uffd/region.ts';
import { MipsMeter, TARGET_MIPS, formatFigure, type MipsFigure } from './mips-figures.ts';

const RAM_SIZE = 64 << 20;
const SLICE = 100_000_000;
// A 4 MiB working set (beyond the host's L2), random lines, half of them stores, never finishing.
const GUEST_ARGS = 'wss=4M pattern=random write=50 passes=0 beat=1000000';

type RamSetup = 'dev' | 'sim' | 'none';

interface Setup {
  machine: Machine;
  uffd: Userfaultfd | undefined;
  region: GuestRegion | undefined;
  faults: () => number;
}

// Boots first (the image lands in RAM, populating those pages), then registers
// all of RAM and places zeros in every page still missing; faults are counted
// (and served, so a miss cannot hang the run) to show none happen.
function setUp(ram: RamSetup): Setup {
  const image = readGuestImage('memwork');
  if (ram === 'none') {
    const machine = Machine.create({ image, ramSize: RAM_SIZE, guestArgs: GUEST_ARGS, backend: 'shared' });
    machine.boot();
    return { machine, uffd: undefined, region: undefined, faults: () => 0 };
  }
  const region = allocateRegion(RAM_SIZE, ram === 'dev' ? 'kernel' : 'sim');
  const machine = Machine.create({ image, ramSize: RAM_SIZE, guestArgs: GUEST_ARGS, region });
  machine.boot();
  const uffd = openPath(ram);
  uffd.register(region.address, region.length);
  uffd.zeropage(region.address, region.length);
  let faults = 0;
  uffd.on('events', (batch) => {
    for (const event of batch) {
      if (event.type !== 'pagefault') continue;
      faults++;
      uffd.zeropage(event.address - (event.address % PAGE_SIZE), PAGE_SIZE);
    }
  });
  return { machine, uffd, region, faults: () => faults };
}

async function tearDown(s: Setup): Promise<void> {
  await s.machine.close();
  s.uffd?.close();
  s.region?.release();
}

async function measure(ram: RamSetup, seconds: number): Promise<{ figure: MipsFigure; faults: number }> {
  const s = setUp(ram);
  try {
    await s.machine.start({ paused: true });
    let time = (await s.machine.pause())[0]!;
    // One slice first, so compiling the hot loop is not measured.
    time += SLICE;
    await s.machine.runUntil(time);
    const faultsBefore = s.faults();
    const meter = new MipsMeter();
    while (meter.elapsedMs < seconds * 1000) {
      time += SLICE;
      const started = performance.now();
      const [report] = await s.machine.runUntil(time);
      meter.add(SLICE, performance.now() - started);
      if (report!.reason !== 'stop-at') throw new Error(`memwork stopped early (${report!.reason}) on ${ram}`);
    }
    return { figure: meter.figure(), faults: s.faults() - faultsBefore };
  } finally {
    await tearDown(s);
  }
}

const seconds = Number(process.argv[2] ?? 5);
const rows: [string, RamSetup][] = [
  ['kernel backend (/dev/userfaultfd)', 'dev'],
  ['software backend (sim)', 'sim'],
  ['plain shared memory (reference)', 'none'],
];
process.stdout.write(
  `guest machine, memwork (${GUEST_ARGS}), one vCPU, ${RAM_SIZE >> 20} MiB RAM, every page present, ${seconds} s per figure\n` +
    `× = ratio to the ${TARGET_MIPS} MIPS target\n` +
    `  ${''.padEnd(36)} ${'best slice'.padEnd(20)} ${'mean'.padEnd(20)} faults while measured\n`,
);
const figures = new Map<RamSetup, MipsFigure>();
for (const [name, ram] of rows) {
  const { figure, faults } = await measure(ram, seconds);
  figures.set(ram, figure);
  process.stdout.write(`  ${name.padEnd(36)} ${formatFigure(figure)}  ${faults}\n`);
}
const reference = figures.get('none')!;
for (const [name, ram] of rows.slice(0, 2)) {
  const f = figures.get(ram)!;
  process.stdout.write(`  ${name}: ${(f.best / reference.best).toFixed(2)}× plain shared memory (best slices), ${(f.mean / reference.mean).toFixed(2)}× (means)\n`);
}

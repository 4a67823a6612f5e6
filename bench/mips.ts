// Guest instructions per second of one vCPU core (src/guest/cpu) on two hot
// loops shaped like memwork: hand-written assembly (an LCG picks words in a
// 64 KiB buffer, each is read, a quarter written back, ALU work and
// data-dependent branches between) and compiled C (test/guest/cpu/fixtures/
// hot-loop.c: a 1 MiB working set through a function call per access).
// Prints MIPS for the JIT (plain RAM, and with the software userfaultfd's
// presence checks) and for the interpreter, the floor measured in the same
// run, with ratios to the 100 MIPS target. Never passes or fails.
//
//   node --import tsx bench/mips.ts [seconds-per-figure]
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Hart, type HartBus, type HartEngine, type PageGate } from '../src/guest/cpu/hart.ts';
// The tests' assembler keeps the guest program readable here.
import { assemble } from '../test/guest/cpu/asm.ts';
import { MipsMeter, TARGET_MIPS, formatFigure, type MipsFigure } from './mips-figures.ts';

const RAM_BASE = 0x8000_0000;
const RAM_SIZE = 16 << 20;
const SLICE = 50_000_000;

const PROGRAM = `
  la s1, buf
  li s2, 12345
  li s3, 1103515245
  li s4, 0xfffc
  li s5, 0
  li s6, 0
loop:
  mul s2, s2, s3
  addi s2, s2, 1234
  srli t0, s2, 8
  and t0, t0, s4
  add t0, t0, s1
  lw t1, 0(t0)
  add s5, s5, t1
  andi t2, s2, 0x300
  bnez t2, skip
  xor t1, t1, s2
  sw t1, 0(t0)
skip:
  addi s6, s6, 1
  andi t3, s6, 15
  bnez t3, loop
  andi t0, s5, 0x7f0
  add t0, t0, s1
  lbu t1, 3(t0)
  lh t2, 6(t0)
  add t1, t1, t2
  sh t1, 8(t0)
  j loop
  .space 4096
buf: .word 0
`;

type Workload = 'asm' | 'c';

function image(workload: Workload): Uint8Array {
  if (workload === 'c') return readFileSync(new URL('../test/guest/cpu/fixtures/hot-loop.bin', import.meta.url));
  const { words } = assemble(PROGRAM, RAM_BASE);
  return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
}

function machine(workload: Workload, engine: HartEngine, gated: boolean): Hart {
  const ram = new SharedArrayBuffer(RAM_SIZE);
  new Uint8Array(ram).set(image(workload));
  const gate: PageGate = {
    present: new Int32Array(RAM_SIZE >>> 17).fill(-1),
    ensure() { throw new Error('every page is present in this benchmark'); },
  };
  const bus: HartBus = {
    ram,
    ramBase: RAM_BASE,
    ramSize: RAM_SIZE,
    dirty: new Uint8Array(new SharedArrayBuffer(RAM_SIZE >>> 12)),
    gate: gated ? gate : null,
    mmioLoad: () => undefined,
    mmioStore: () => false,
    timerCompare: () => Number.MAX_SAFE_INTEGER,
    softwareInterruptPending: () => false,
  };
  const hart = new Hart(0, bus, { engine });
  hart.pc = RAM_BASE;
  return hart;
}

function measure(workload: Workload, engine: HartEngine, gated: boolean, seconds: number): MipsFigure {
  const hart = machine(workload, engine, gated);
  const slice = engine === 'jit' ? SLICE : SLICE / 25;
  hart.run(slice);
  const meter = new MipsMeter();
  while (meter.elapsedMs < seconds * 1000) {
    const sliceStart = performance.now();
    hart.run(slice);
    meter.add(slice, performance.now() - sliceStart);
  }
  return meter.figure();
}

const seconds = Number(process.argv[2] ?? 3);
const rows: [string, Workload, HartEngine, boolean][] = [
  ['asm loop, jit', 'asm', 'jit', false],
  ['asm loop, jit + software uffd gate', 'asm', 'jit', true],
  ['asm loop, interpreter (floor)', 'asm', 'interpreter', false],
  ['C loop, jit', 'c', 'jit', false],
  ['C loop, interpreter (floor)', 'c', 'interpreter', false],
];
process.stdout.write(
  `vCPU core, one hart, ${seconds} s per figure; × = ratio to the ${TARGET_MIPS} MIPS target\n` +
  `  ${''.padEnd(36)} ${'best slice'.padEnd(20)} mean\n`,
);
const figures = new Map<string, MipsFigure>();
for (const [name, workload, engine, gated] of rows) {
  const figure = measure(workload, engine, gated, seconds);
  figures.set(name, figure);
  process.stdout.write(`  ${name.padEnd(36)} ${formatFigure(figure)}\n`);
}
for (const workload of ['asm', 'C']) {
  const jit = figures.get(`${workload} loop, jit`)!;
  const floor = figures.get(`${workload} loop, interpreter (floor)`)!;
  process.stdout.write(`  ${workload} loop: jit is ${(jit.best / floor.best).toFixed(1)}× the interpreter floor (best slices)\n`);
}

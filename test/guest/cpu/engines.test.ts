// The JIT and the interpreter must be indistinguishable: random programs
// (every RV32IM instruction, traps, MMIO, CSR reads of time, self-modifying
// stores, a timer interrupt, with or without a page gate) run both ways, the
// JIT in random budget pieces.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PageGate } from '../../../src/guest/cpu/hart.ts';
import { LOGGER, machine, RAM_BASE, snapshot } from './machine.ts';
import { FINISH } from './run.ts';

const OPS = ['add', 'sub', 'sll', 'slt', 'sltu', 'xor', 'srl', 'sra', 'or', 'and',
  'mul', 'mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu'];
const OP_IMMS = ['addi', 'slti', 'sltiu', 'xori', 'ori', 'andi'];
const SHIFTS = ['slli', 'srli', 'srai'];
const LOADS = ['lb', 'lh', 'lw', 'lbu', 'lhu'];
const STORES = ['sb', 'sh', 'sw'];
const BRANCHES = ['beq', 'bne', 'blt', 'bge', 'bltu', 'bgeu'];

// s8 = code, s9 = MMIO logger, s10 = loop counter, s11 = data, t6 = trap handler: never destinations.
const DEST = [...Array(26).keys(), 28, 29, 30].map((r) => `x${r}`);
const ANY = [...Array(32).keys()].map((r) => `x${r}`);

const dest = fc.constantFrom(...DEST);
const src = fc.constantFrom(...ANY);
const imm12 = fc.integer({ min: -2048, max: 2047 });

/** One body line; `@k` stands for the label k lines further on (clamped to the body). */
const line: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...OPS), dest, src, src).map(([op, d, a, b]) => `${op} ${d}, ${a}, ${b}`) },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...OP_IMMS), dest, src, imm12).map(([op, d, a, v]) => `${op} ${d}, ${a}, ${v}`) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...SHIFTS), dest, src, fc.nat(31)).map(([op, d, a, v]) => `${op} ${d}, ${a}, ${v}`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('lui', 'auipc'), dest, fc.nat(0xfffff)).map(([op, d, v]) => `${op} ${d}, ${v}`) },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...LOADS), dest, imm12).map(([op, d, v]) => `${op} ${d}, ${v}(s11)`) },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...STORES), src, imm12).map(([op, s, v]) => `${op} ${s}, ${v}(s11)`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...LOADS, ...STORES), src, fc.integer({ min: 0, max: 64 }))
    .map(([op, r, v]) => (op.startsWith('s') ? `${op} ${r}, ${v}(s9)` : `${op} x5, ${v}(s9)`)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...LOADS), dest, src, imm12).map(([op, d, a, v]) => `${op} ${d}, ${v}(${a})`) },
  { weight: 1, arbitrary: fc.tuple(src, fc.nat(100)).map(([s, w]) => `sw ${s}, ${4 * w}(s8)`) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...BRANCHES), src, src, fc.integer({ min: -3, max: 8 }))
    .map(([op, a, b, k]) => `${op} ${a}, ${b}, @${k === 0 ? 1 : k}`) },
  { weight: 1, arbitrary: fc.tuple(dest, fc.integer({ min: 1, max: 6 })).map(([d, k]) => `jal ${d}, @${k}`) },
  { weight: 1, arbitrary: fc.tuple(dest, fc.integer({ min: 1, max: 6 })).map(([d, k]) => `la ${d}, @${k}\njalr ${d}, 0(${d})`) },
  { weight: 1, arbitrary: fc.tuple(dest, fc.constantFrom('time', 'instret', 'mscratch', 'mip', 'cycleh')).map(([d, c]) => `csrr ${d}, ${c}`) },
  { weight: 1, arbitrary: fc.tuple(dest, src).map(([d, s]) => `csrrw ${d}, mscratch, ${s}`) },
  { weight: 1, arbitrary: fc.constantFrom('ecall', 'ebreak', '.word 0', '.word 0x0005a02f', 'fence', 'fence.i', 'wfi') },
);

function program(lines: string[]): string {
  const n = lines.length;
  const label = (i: number, k: string): string => `L${Math.max(0, Math.min(n, i + Number(k)))}`;
  const body = lines.map((l, i) => `L${i}: ${l.replace(/@(-?\d+)/g, (_m, k: string) => label(i, k))}`).join('\n');
  return `
la t6, handler
csrw mtvec, t6
li s11, ${RAM_BASE + 0x2800}
li s9, ${LOGGER}
la s8, L0
li t6, 0x80
csrw mie, t6
csrsi mstatus, 8
li s10, 3
loop:
${body}
L${n}: addi s10, s10, -1
bnez s10, loop
${FINISH}
handler:
csrr t6, mcause
bltz t6, irq
csrr t6, mepc
addi t6, t6, 4
csrw mepc, t6
mret
irq:
li t6, 0x80
csrc mie, t6
mret`;
}

const BUDGET = 20_000;
const RAM_SIZE = 1 << 16;

/** A software-userfaultfd stand-in where only the code page starts present; records every ensure(). */
function recordingGate(): PageGate & { calls: string[] } {
  const present = new Int32Array(1);
  present[0] = 1;
  const calls: string[] = [];
  return {
    present,
    calls,
    ensure(offset, write) {
      calls.push(`${offset.toString(16)} ${write}`);
      present[0] |= 1 << (offset >>> 12);
    },
  };
}

describe('JIT and interpreter agree', () => {
  it('on random programs, whatever the budget pieces', () => {
    fc.assert(
      fc.property(
        fc.array(line, { minLength: 1, maxLength: 80 }),
        fc.array(fc.integer(), { minLength: 32, maxLength: 32 }),
        fc.integer({ min: 0, max: 3000 }),
        fc.array(fc.integer({ min: 1, max: 3000 }), { maxLength: 10 }),
        fc.boolean(),
        (lines, regs, mtimecmp, pieces, gated) => {
          const source = program(lines);
          const runs = (['interpreter', 'jit'] as const).map((engine, e) => {
            const gate = gated ? recordingGate() : null;
            const m = machine(source, { engine, ramSize: RAM_SIZE, gate });
            m.hart.x.set(regs);
            m.hart.x[0] = 0;
            m.clint.mtimecmp = mtimecmp;
            let left = BUDGET;
            let stop = '';
            for (const p of e === 1 ? pieces : []) {
              stop = m.hart.run(Math.min(p, left));
              left -= Math.min(p, left);
              if (stop !== 'budget') break;
            }
            if (stop === '' || stop === 'budget') stop = m.hart.run(left);
            return { stop, time: m.hart.time, log: m.mmioLog, gateCalls: gate?.calls, ...snapshot(m) };
          });
          expect(runs[1]).toEqual(runs[0]);
        },
      ),
      { numRuns: Number(process.env.ENGINE_RUNS ?? 150) },
    );
  });

  it('on loops that straddle a page boundary', () => {
    const source = `
li a0, 0
li a1, 1000
j loop
.space ${0x1000 - 20}
loop: addi a0, a0, 3
xor a2, a2, a0
addi a1, a1, -1
bnez a1, loop
${FINISH}`;
    const runs = (['interpreter', 'jit'] as const).map((engine) => {
      const m = machine(source, { engine, ramSize: RAM_SIZE });
      expect(m.program.labels.get('loop')! % 0x1000).toBe(0xff8);
      expect(m.hart.run(BUDGET)).toBe('mmio-stop');
      return snapshot(m);
    });
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[0].state.x[10]).toBe(3000);
  });
});

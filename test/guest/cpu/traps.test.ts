import { describe, expect, it } from 'vitest';
import { reg } from './asm.ts';
import { ENGINES, LOGGER, UNMAPPED } from './machine.ts';
import { runSnippet } from './run.ts';

/** Installs `handler` as mtvec; the handler records mcause/mepc/mtval/mstatus in s0..s3, then finishes. */
const withHandler = (body: string): string => `
la t0, handler
csrw mtvec, t0
${body}
j finish
handler:
csrr s0, mcause
csrr s1, mepc
csrr s2, mtval
csrr s3, mstatus
finish: nop`;

interface TrapCase {
  what: string;
  body: string;
  cause: number;
  /** Label of the trapping instruction (mepc), or an absolute address. */
  epc: string | number;
  /** mtval: a label, an absolute value, or 'inst' for the trapping word itself. */
  tval: string | number;
}

const CASES: TrapCase[] = [
  { what: 'ecall', body: 'at: ecall', cause: 11, epc: 'at', tval: 0 },
  { what: 'ebreak (mtval 0, as QEMU reports it)', body: 'at: ebreak', cause: 3, epc: 'at', tval: 0 },
  { what: 'all-ones word is illegal', body: 'at: .word 0xffffffff', cause: 2, epc: 'at', tval: 'inst' },
  { what: 'the zero word is illegal', body: 'at: .word 0', cause: 2, epc: 'at', tval: 'inst' },
  { what: 'compressed encodings are illegal (no C)', body: 'at: .word 0x00004501', cause: 2, epc: 'at', tval: 'inst' },
  { what: 'A extension is illegal', body: 'at: .word 0x0005a02f', cause: 2, epc: 'at', tval: 'inst' },
  { what: 'F extension is illegal', body: 'at: .word 0x00052007', cause: 2, epc: 'at', tval: 'inst' },
  { what: 'writing a read-only CSR is illegal', body: 'at: csrw mhartid, a0', cause: 2, epc: 'at', tval: 'inst' },
  { what: 'an unknown CSR is illegal', body: 'at: csrr a0, 0x7c0', cause: 2, epc: 'at', tval: 'inst' },
  { what: 'sret is illegal in an M-only hart', body: 'at: .word 0x10200073', cause: 2, epc: 'at', tval: 'inst' },
  { what: 'srai with a bad funct7 is illegal', body: 'at: .word 0x60055513', cause: 2, epc: 'at', tval: 'inst' },
  { what: 'misaligned lw', body: 'la a0, data\nat: lw a1, 2(a0)\ndata: .word 0', cause: 4, epc: 'at', tval: 'data+2' },
  { what: 'misaligned lh', body: 'la a0, data\nat: lhu a1, 1(a0)\ndata: .word 0', cause: 4, epc: 'at', tval: 'data+1' },
  { what: 'misaligned sw', body: 'la a0, data\nat: sw a1, 1(a0)\ndata: .word 0', cause: 6, epc: 'at', tval: 'data+1' },
  { what: 'misaligned sh', body: 'la a0, data\nat: sh a1, 3(a0)\ndata: .word 0', cause: 6, epc: 'at', tval: 'data+3' },
  { what: 'load from an unmapped address', body: `li a0, ${UNMAPPED}\nat: lw a1, 4(a0)`, cause: 5, epc: 'at', tval: UNMAPPED + 4 },
  { what: 'store to an unmapped address', body: `li a0, ${UNMAPPED}\nat: sb a1, 0(a0)`, cause: 7, epc: 'at', tval: UNMAPPED },
  { what: 'misaligned jalr target', body: 'la a0, data\nat: jalr ra, 2(a0)\ndata: nop', cause: 0, epc: 'at', tval: 'data+2' },
  { what: 'misaligned taken branch', body: 'at: .word 0x00000363', cause: 0, epc: 'at', tval: 'at+6' },
  { what: 'misaligned jal', body: 'at: .word 0x0060006f', cause: 0, epc: 'at', tval: 'at+6' },
  { what: 'fetch from an unmapped address', body: `li a0, ${UNMAPPED}\njr a0`, cause: 1, epc: UNMAPPED, tval: UNMAPPED },
];

describe.each(ENGINES)('traps (%s engine)', (engine) => {
  it.each(CASES)('$what', ({ body, cause, epc, tval }) => {
    const m = runSnippet(withHandler(body), engine);
    const labels = m.program.labels;
    const resolve = (v: string | number): number => {
      if (typeof v === 'number') return v;
      const [name, plus] = v.split('+');
      return labels.get(name)! + Number(plus ?? 0);
    };
    const at = labels.get('at');
    expect(m.hart.x[reg('s0')]).toBe(cause);
    expect(m.hart.x[reg('s1')] >>> 0).toBe(resolve(epc));
    const expectedTval = tval === 'inst' ? m.ram32[(at! - m.program.base) >>> 2] >>> 0 : resolve(tval);
    expect(m.hart.x[reg('s2')] >>> 0).toBe(expectedTval);
    // MPP reads M; MIE was 0, so MPIE is 0.
    expect(m.hart.x[reg('s3')]).toBe(3 << 11);
  });

  it('a branch that is not taken never checks its target', () => {
    const m = runSnippet('li a0, 1\n.word 0x00001363\nli a1, 7', engine);
    expect(m.hart.x[reg('a1')]).toBe(7);
  });

  it('mret returns to mepc and restores MIE from MPIE', () => {
    const m = runSnippet(`
la t0, handler
csrw mtvec, t0
csrsi mstatus, 8
ecall
csrr s1, mstatus
j finish
handler:
csrr s0, mstatus
csrr t0, mepc
addi t0, t0, 4
csrw mepc, t0
mret
finish: nop`, engine);
    expect(m.hart.x[reg('s0')]).toBe((3 << 11) | 0x80);
    expect(m.hart.x[reg('s1')]).toBe((3 << 11) | 0x88);
  });

  it('MMIO loads and stores reach the bus with their width and extension', () => {
    const m = runSnippet(`li a0, ${LOGGER}\nlb a1, 0(a0)\nlhu a2, 2(a0)\nlw a3, 4(a0)\nsb a3, 8(a0)\nsh a3, 10(a0)\nsw a3, 12(a0)`, engine);
    expect(m.hart.x[reg('a1')]).toBe(0xffffff98 | 0);
    expect(m.hart.x[reg('a2')]).toBe(0xba98);
    expect(m.hart.x[reg('a3')]).toBe(0xfedcba98 | 0);
    expect(m.mmioLog.slice(3)).toEqual(['store1 10000008 98', 'store2 1000000a ba98', 'store4 1000000c fedcba98', 'finish 0']);
  });

  it('CSRs: misa, ids, WARL fields and read-only counters', () => {
    const m = runSnippet(`
csrr a0, misa
csrr a1, mhartid
csrr a2, mvendorid
li t0, -1
csrw mstatus, t0
csrr a3, mstatus
csrw mie, t0
csrr a4, mie
csrw mepc, t0
csrr a5, mepc
csrw mtvec, t0
csrr a6, mtvec
csrrw a7, mscratch, t0
csrrci s0, mscratch, 5
csrr s1, mscratch
csrr s2, instret
csrr s3, cycleh
csrw misa, zero
csrr s4, misa`, engine);
    const x = (n: string): number => m.hart.x[reg(n)];
    expect(x('a0')).toBe(0x40001100);
    expect(x('a1')).toBe(0);
    expect(x('a2')).toBe(0);
    expect(x('a3')).toBe(0x1888);
    expect(x('a4')).toBe(0x888);
    expect(x('a5')).toBe(-4);
    expect(x('a6')).toBe(-4);
    expect(x('a7')).toBe(0);
    expect(x('s0')).toBe(-1);
    expect(x('s1')).toBe(-6);
    expect(x('s2')).toBe(15);
    expect(x('s3')).toBe(0);
    expect(x('s4')).toBe(0x40001100);
  });
});

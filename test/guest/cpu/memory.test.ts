import { describe, expect, it, vi } from 'vitest';
import type { PageGate } from '../../../src/guest/cpu/hart.ts';
import { reg } from './asm.ts';
import { ENGINES, machine, RAM_BASE } from './machine.ts';
import { FINISH, runSnippet } from './run.ts';

const pagesSet = (dirty: Uint8Array): number[] => [...dirty.keys()].filter((p) => dirty[p] !== 0);

/** A stand-in for the software userfaultfd: records ensure() calls, then marks the page present. */
function fakeGate(ramSize: number, presentPages: number[]): PageGate & { calls: [number, boolean][] } {
  const present = new Int32Array(ramSize >>> 17);
  const mark = (p: number): void => { present[p >>> 5] |= 1 << (p & 31); };
  presentPages.forEach(mark);
  const calls: [number, boolean][] = [];
  return {
    present,
    calls,
    ensure(offset, write) {
      calls.push([offset, write]);
      mark(offset >>> 12);
    },
  };
}

describe.each(ENGINES)('guest RAM (%s engine)', (engine) => {
  it('marks dirty exactly the pages stored to, at every width', () => {
    const m = runSnippet(`
li a0, ${RAM_BASE + 0x5000}
sw a0, 0(a0)
li a4, ${RAM_BASE + 0x6ffe}
sh a0, 0(a4)
li a1, ${RAM_BASE + 0x9fff}
sb a0, 0(a1)
lw a2, 0x300(a0)
li a3, 0x10000000
sw a0, 0(a3)`, engine);
    expect(pagesSet(m.bus.dirty)).toEqual([5, 6, 9]);
  });

  it('keeps marking pages the migration source cleared', () => {
    const m = machine(`
li a0, ${RAM_BASE + 0x4000}
loop: sw a0, 0(a0)
j loop`, { engine });
    m.hart.run(100);
    expect(pagesSet(m.bus.dirty)).toEqual([4]);
    m.bus.dirty.fill(0);
    m.hart.run(100);
    expect(pagesSet(m.bus.dirty)).toEqual([4]);
  });

  it('runs code rewritten by its own stores, even without fence.i', () => {
    const m = runSnippet(`
la a0, patched
lw a1, 4(a0)
li s0, 0
li s1, 3
loop:
patched: addi s0, s0, 1
addi s0, s0, 100
sw a1, 0(a0)
addi s1, s1, -1
bnez s1, loop`, engine);
    // First pass adds 1 + 100, then the first addi has become "addi s0, s0, 100".
    expect(m.hart.x[reg('s0')]).toBe(101 + 200 + 200);
  });

  it('runs code changed behind its back once told to invalidate it', () => {
    const m = machine(`
loop: addi a0, a0, 1
j loop`, { engine });
    m.hart.run(100);
    expect(m.hart.x[reg('a0')]).toBe(50);
    // "addi a0, a0, 2", as DMA or page placement could have written it.
    m.ram32[0] = 0x00250513;
    m.hart.invalidateCode(0, 4);
    m.hart.run(100);
    expect(m.hart.x[reg('a0')]).toBe(150);
  });

  it('asks the page gate for non-present pages on fetch, load and store, once each', () => {
    const ramSize = 1 << 20;
    const gate = fakeGate(ramSize, [0]);
    const m = machine(`
li a0, ${RAM_BASE + 0x3000}
lw a1, 8(a0)
lw a1, 12(a0)
li a2, ${RAM_BASE + 0x7000}
sw a1, 4(a2)
sw a1, 8(a2)
li a3, ${RAM_BASE + 0x9000}
jr a3` , { engine, gate, ramSize });
    m.ram32[0x9000 >>> 2] = 0x00100073; // ebreak at the far page
    m.hart.run(12);
    expect(gate.calls).toEqual([[0x3008, false], [0x7004, true], [0x9000, false]]);
  });

  it('a throwing gate surfaces from run() with the instruction not executed', () => {
    const ramSize = 1 << 20;
    const gate: PageGate = {
      present: new Int32Array(ramSize >>> 17).fill(1),
      ensure() { throw new Error('source went away'); },
    };
    const m = machine(`li a0, ${RAM_BASE + 0x3000}\nli a1, 5\nsw a1, 0(a0)\n${FINISH}`, { engine, gate, ramSize });
    expect(() => m.hart.run(100)).toThrow('source went away');
    expect(m.hart.pc).toBe(RAM_BASE + 12);
    expect(m.hart.time).toBe(3);
    expect(m.bus.dirty[3]).toBe(0);
  });
});

describe('compiled code and nearby data', () => {
  it('a store beside compiled code (same 256-byte granule) does not recompile it', () => {
    const m = machine(`
la a0, data
li a1, 1000
loop: sw a1, 0(a0)
addi a1, a1, -1
bnez a1, loop
${FINISH}
data: .word 0`, { engine: 'jit' });
    const insert = vi.spyOn(m.hart.code, 'insert');
    expect(m.hart.run(100_000)).toBe('mmio-stop');
    expect(m.ram32[(m.program.labels.get('data')! - RAM_BASE) >>> 2]).toBe(1);
    expect(insert.mock.calls.length).toBeLessThan(10);
  });
});

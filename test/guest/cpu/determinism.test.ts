import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Hart } from '../../../src/guest/cpu/hart.ts';
import { ENGINES, machine, snapshot } from './machine.ts';
import { WORKLOAD } from './programs.ts';

const TOTAL = 60_000;

describe.each(ENGINES)('exact budgets and save/restore (%s engine)', (engine) => {
  const straight = machine(WORKLOAD, { engine });
  expect(straight.hart.run(TOTAL)).toBe('budget');
  const expected = snapshot(straight);

  it('the workload really takes timer interrupts', () => {
    expect(straight.hart.x[20]).toBeGreaterThan(10);
  });

  it('run(budget) in pieces ends in the same state as one run', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 7000 }), { maxLength: 40 }), (pieces) => {
        const m = machine(WORKLOAD, { engine });
        let done = 0;
        for (const p of pieces) {
          const piece = Math.min(p, TOTAL - done);
          expect(m.hart.run(piece)).toBe('budget');
          done += piece;
          expect(m.hart.time).toBe(done);
        }
        m.hart.run(TOTAL - done);
        expect(snapshot(m)).toEqual(expected);
      }),
      { numRuns: 40 },
    );
  });

  it('a state saved at K and restored into a fresh hart continues exactly', () => {
    for (const k of [0, 1, 4999, 5000, 5001, 17_321, 59_999]) {
      const first = machine(WORKLOAD, { engine });
      first.hart.run(k);
      const state = structuredClone(first.hart.save());
      const ram = first.ram.slice().buffer;
      const second = machine(WORKLOAD, { engine, ram });
      second.bus.dirty.set(first.bus.dirty);
      second.clint.mtimecmp = first.clint.mtimecmp;
      second.hart.restore(state);
      expect(second.hart.run(TOTAL - k)).toBe('budget');
      expect(snapshot(second)).toEqual(expected);
    }
  });
});

describe('hart state validation', () => {
  const m = machine('nop');
  const good = m.hart.save();
  const cases: [string, unknown, RegExp][] = [
    ['not an object', 42, /state is not an object/],
    ['another version', { ...good, version: 2 }, /version is 2/],
    ['another hart', { ...good, hartId: 3 }, /hartId is 3/],
    ['misaligned pc', { ...good, pc: 0x80000002 }, /pc must be/],
    ['short register file', { ...good, x: [0, 1] }, /x must be an array of 32/],
    ['register out of range', { ...good, x: [0, 2 ** 31, ...new Array(30).fill(0)] }, /x\[1\] must be an int32/],
    ['non-zero x0', { ...good, x: [1, ...new Array(31).fill(0)] }, /x\[0\] must be 0/],
    ['negative time', { ...good, time: -1 }, /time must be/],
    ['missing csr', { ...good, csr: undefined }, /csr is not an object/],
    ['illegal mstatus bits', { ...good, csr: { ...good.csr, mstatus: 0x2 } }, /csr.mstatus holds bits/],
    ['non-integer mepc', { ...good, csr: { ...good.csr, mepc: 1.5 } }, /csr.mepc must be a uint32/],
  ];
  it.each(cases)('refuses a state with %s, naming the field', (_what, state, message) => {
    expect(() => m.hart.restore(state as ReturnType<Hart['save']>)).toThrow(message);
    try {
      m.hart.restore(state as ReturnType<Hart['save']>);
    } catch (err) {
      expect((err as { code: string }).code).toBe('GUEST_ERR_STATE');
    }
  });
});

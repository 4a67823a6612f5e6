// Running a snippet to its end: snippets finish by storing to the test finisher.
import { expect } from 'vitest';
import type { HartEngine } from '../../../src/guest/cpu/hart.ts';
import { machine, type MachineOptions, type TestMachine } from './machine.ts';

/** Appended to every snippet: t6 is reserved for it. */
export const FINISH = '\nlui t6, 0x100\nsw zero, 0(t6)\n';

export function runSnippet(source: string, engine: HartEngine, options: MachineOptions = {}): TestMachine {
  const m = machine(source + FINISH, { ...options, engine });
  expect(m.hart.run(100_000)).toBe('mmio-stop');
  return m;
}

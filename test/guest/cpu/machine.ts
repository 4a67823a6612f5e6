// A minimal machine around one Hart for tests: plain RAM, a dirty log, a CLINT
// whose mtimecmp/msip tests set directly, a test finisher, a console-ish MMIO
// log, and an optional fake page gate.
import { Hart, type HartBus, type HartEngine, type PageGate } from '../../../src/guest/cpu/hart.ts';
import { assemble, type Program } from './asm.ts';

export const RAM_BASE = 0x8000_0000;
export const FINISHER = 0x0010_0000;
/** A device that records every access; loads return `mmioValue`. */
export const LOGGER = 0x1000_0000;
export const UNMAPPED = 0x2000_0000;
/** CLINT registers of hart 0, as on QEMU virt. */
export const MTIMECMP = 0x0200_4000;
export const MTIME = 0x0200_bff8;

export interface TestMachine {
  hart: Hart;
  bus: HartBus;
  ram: Uint8Array;
  ram32: Int32Array;
  clint: { mtimecmp: number; msip: boolean };
  mmioLog: string[];
  program: Program;
}

export interface MachineOptions {
  ramSize?: number;
  engine?: HartEngine;
  gate?: PageGate | null;
  ram?: ArrayBuffer;
}

export function machine(source: string | Program, options: MachineOptions = {}): TestMachine {
  const ramSize = options.ramSize ?? 1 << 20;
  const ramBuffer = options.ram ?? new ArrayBuffer(ramSize);
  const program = typeof source === 'string' ? assemble(source, RAM_BASE) : source;
  const ram = new Uint8Array(ramBuffer);
  if (options.ram === undefined) new Uint32Array(ramBuffer, program.base - RAM_BASE, program.words.length).set(program.words);
  const clint = { mtimecmp: Number.MAX_SAFE_INTEGER, msip: false };
  const mmioLog: string[] = [];
  let hart: Hart | undefined;
  const bus: HartBus = {
    ram: ramBuffer,
    ramBase: RAM_BASE,
    ramSize,
    dirty: new Uint8Array(new SharedArrayBuffer(ramSize >>> 12)),
    gate: options.gate ?? null,
    mmioLoad(addr, size) {
      if (addr === MTIME && size === 4) return hart!.time % 2 ** 32;
      if (addr === MTIME + 4 && size === 4) return Math.floor(hart!.time / 2 ** 32);
      if (addr >= LOGGER && addr < LOGGER + 0x100) {
        mmioLog.push(`load${size} ${addr.toString(16)}`);
        return 0xfedcba98 & (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff);
      }
      return undefined;
    },
    mmioStore(addr, size, value) {
      if (addr === MTIMECMP && size === 4) {
        clint.mtimecmp = Math.floor(clint.mtimecmp / 2 ** 32) * 2 ** 32 + value;
        return true;
      }
      if (addr === MTIMECMP + 4 && size === 4) {
        clint.mtimecmp = (clint.mtimecmp % 2 ** 32) + value * 2 ** 32;
        return true;
      }
      if (addr === FINISHER) {
        mmioLog.push(`finish ${value.toString(16)}`);
        hart!.requestStop();
        return true;
      }
      if (addr >= LOGGER && addr < LOGGER + 0x100) {
        mmioLog.push(`store${size} ${addr.toString(16)} ${value.toString(16)}`);
        return true;
      }
      return false;
    },
    timerCompare: () => clint.mtimecmp,
    softwareInterruptPending: () => clint.msip,
  };
  hart = new Hart(0, bus, { engine: options.engine ?? 'jit' });
  hart.pc = program.base;
  return { hart, bus, ram, ram32: new Int32Array(ramBuffer), clint, mmioLog, program };
}

/** Everything a run can change, for comparing two runs. */
export function snapshot(m: TestMachine): { state: ReturnType<Hart['save']>; ram: string; dirty: number[] } {
  let hash = 0x811c9dc5;
  for (let i = 0; i < m.ram32.length; i++) hash = Math.imul(hash ^ m.ram32[i], 0x01000193);
  return { state: m.hart.save(), ram: (hash >>> 0).toString(16), dirty: Array.from(m.bus.dirty) };
}

export const ENGINES: HartEngine[] = ['interpreter', 'jit'];

// CLINT (SiFive core-local interruptor): per-hart msip (software interrupt)
// and mtimecmp (timer compare), shared by every hart's worker, and mtime,
// which reads as the *reading hart's* own time. Time counts retired
// instructions (plus ticks a wfi skips), so timer interrupts land at the same
// instruction in every run. Writes to mtime are ignored: time is derived.
import type { AccessSize, MmioDevice } from './mmio.ts';
import { mergeRegister, registerSlice } from './mmio.ts';
import { CLINT_BASE, CLINT_SIZE, MAX_VCPUS } from '../memory-map.ts';

export interface ClintState {
  msip: number[];
  /** Per hart; 64-bit, so bigint. */
  mtimecmp: bigint[];
}

const MSIP_END = 4 * MAX_VCPUS;
const MTIMECMP = 0x4000;
const MTIMECMP_END = MTIMECMP + 8 * MAX_VCPUS;
const MTIME = 0xbff8;
/** Reset compare value: never, so no timer is pending until the guest arms one. */
const NEVER = 0xffff_ffff_ffff_ffffn;

/** Layout: msip[4] then mtimecmp as (lo, hi) u32 pairs; guests write the halves separately. */
export class ClintRegisters {
  static readonly BYTES = (MAX_VCPUS + 2 * MAX_VCPUS) * 4;
  private readonly words: Int32Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(ClintRegisters.BYTES);
    this.words = new Int32Array(this.buffer);
    if (!buffer) for (let h = 0; h < MAX_VCPUS; h++) this.setTimecmp(h, NEVER);
  }

  readonly buffer: SharedArrayBuffer;

  msip(hart: number): number {
    return Atomics.load(this.words, hart);
  }

  setMsip(hart: number, value: number): void {
    Atomics.store(this.words, hart, value & 1);
  }

  timecmpWord(hart: number, high: boolean): number {
    return Atomics.load(this.words, MAX_VCPUS + 2 * hart + (high ? 1 : 0)) >>> 0;
  }

  setTimecmpWord(hart: number, high: boolean, value: number): void {
    Atomics.store(this.words, MAX_VCPUS + 2 * hart + (high ? 1 : 0), value | 0);
  }

  timecmp(hart: number): bigint {
    return (BigInt(this.timecmpWord(hart, true)) << 32n) | BigInt(this.timecmpWord(hart, false));
  }

  setTimecmp(hart: number, value: bigint): void {
    this.setTimecmpWord(hart, false, Number(value & 0xffff_ffffn));
    this.setTimecmpWord(hart, true, Number((value >> 32n) & 0xffff_ffffn));
  }

  save(): ClintState {
    const harts = [...Array(MAX_VCPUS).keys()];
    return { msip: harts.map((h) => this.msip(h)), mtimecmp: harts.map((h) => this.timecmp(h)) };
  }

  restore(state: ClintState): void {
    state.msip.forEach((v, h) => this.setMsip(h, v));
    state.mtimecmp.forEach((v, h) => this.setTimecmp(h, v));
  }
}

export interface ClintHooks {
  /** This hart's current time (retired instructions + skipped ticks). */
  time(): number;
  /** Another hart's msip was raised: wake it if it sleeps in wfi. */
  wake(hart: number): void;
}

/** One hart's view of the CLINT. */
export class Clint implements MmioDevice {
  readonly base = CLINT_BASE;
  readonly size = CLINT_SIZE;

  constructor(
    private readonly regs: ClintRegisters,
    private readonly hart: number,
    private readonly hooks: ClintHooks,
  ) {}

  load(offset: number, size: AccessSize): number | undefined {
    if (offset < MSIP_END) return registerSlice(this.regs.msip(offset >> 2), offset, size);
    if (offset >= MTIMECMP && offset < MTIMECMP_END) {
      const rel = offset - MTIMECMP;
      return registerSlice(this.regs.timecmpWord(rel >> 3, (rel & 4) !== 0), offset, size);
    }
    if (offset >= MTIME && offset < MTIME + 8) {
      const time = BigInt(this.hooks.time());
      const word = offset >= MTIME + 4 ? Number(time >> 32n) : Number(time & 0xffff_ffffn);
      return registerSlice(word, offset, size);
    }
    return 0;
  }

  store(offset: number, size: AccessSize, value: number): boolean {
    if (offset < MSIP_END) {
      const target = offset >> 2;
      this.regs.setMsip(target, mergeRegister(this.regs.msip(target), offset, size, value));
      if (target !== this.hart && this.regs.msip(target) !== 0) this.hooks.wake(target);
      return true;
    }
    if (offset >= MTIMECMP && offset < MTIMECMP_END) {
      const rel = offset - MTIMECMP;
      const hart = rel >> 3;
      const high = (rel & 4) !== 0;
      this.regs.setTimecmpWord(hart, high, mergeRegister(this.regs.timecmpWord(hart, high), offset, size, value));
      return true;
    }
    return true;
  }
}

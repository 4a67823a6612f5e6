// One RV32IM + Zicsr machine-mode hart, and the bus it runs against.
//
// How the machine drives it:
//
//   const hart = new Hart(hartId, bus);       // bus: RAM views, dirty log, MMIO, CLINT lines
//   hart.pc = entry; hart.x[10] = hartId;
//   hart.run(budget)  -> 'budget'    time advanced by exactly `budget` ticks
//                     -> 'wfi-halt'  wfi with no enabled interrupt that could ever fire
//                     -> 'mmio-stop' a device called requestStop() (e.g. the test finisher)
//   hart.save() / hart.restore(state)           plain, versioned, validated
//   hart.invalidateCode(ramOffset, length)      RAM changed under the hart (DMA, page placement, discard)
//
// Time: `time` is this hart's CLINT mtime. Every executed instruction is one
// tick, including one that traps (so a trap loop still exhausts its budget);
// taking an interrupt is not. wfi jumps time forward to mtimecmp. Nothing
// depends on the wall clock, so a run is a function of (state, RAM, budgets).
//
// Interrupts are sampled when run() starts and after every instruction that is
// interpreted rather than compiled (CSR and system instructions, MMIO, traps),
// which covers everything this hart can do to change them. Another hart's
// write to this hart's msip or mtimecmp is seen at the next such point.
//
// Engines: 'jit' (default) compiles guest code into JavaScript regions
// (block-compiler.ts) and interprets only what those leave out; 'interpreter'
// runs interpreter.ts alone. Both give identical results; tests check that.
import { compileRegion } from './block-compiler.ts';
import type { PageGate } from '../../uffd/attach.ts';
import { CodeCache, type RegionFn } from './code-cache.ts';
import { CsrFile, MIP_MSIP, MSTATUS_MIE, MIP_MTIP } from './csr.ts';
import { HartArgumentError } from './errors.ts';
import { step, STEP_HALTED } from './interpreter.ts';
import { ensurePresent, ramViews, type RamViews } from './ram.ts';
import { planRegion } from './region-plan.ts';
import { HART_STATE_VERSION, validateHartState, type HartState } from './state.ts';
import { INTERRUPT_MACHINE_SOFTWARE, INTERRUPT_MACHINE_TIMER, takeInterrupt } from './trap.ts';

/**
 * PageGate (src/uffd/attach.ts) is the software userfaultfd's view of RAM:
 * bit (p & 31) of present[p >> 5] says RAM page p is present; if not,
 * ensure(ramOffset, isWrite) blocks until it is, or throws.
 */
export type { PageGate };

export interface HartBus {
  /** All of guest RAM, zero-copy; guest address ramBase is byte 0. */
  ram: ArrayBuffer | SharedArrayBuffer;
  ramBase: number;
  /** 4 KiB .. 2 GiB, a multiple of 4 KiB. */
  ramSize: number;
  /** One byte per 4 KiB RAM page; every store sets it to 1 (the migration source fetch-and-clears it). */
  dirty: Uint8Array;
  /** Only for the software userfaultfd backend; null when RAM is plain or kernel-backed memory. */
  gate: PageGate | null;
  /** Non-RAM addresses; undefined => load access fault. */
  mmioLoad(addr: number, size: 1 | 2 | 4): number | undefined;
  /** Non-RAM addresses; false => store access fault. `value` is zero-extended to `size`. */
  mmioStore(addr: number, size: 1 | 2 | 4, value: number): boolean;
  /** This hart's CLINT mtimecmp (<= 2^53). */
  timerCompare(): number;
  /** This hart's CLINT msip. */
  softwareInterruptPending(): boolean;
}

export type StopReason = 'budget' | 'wfi-halt' | 'mmio-stop';
export type HartEngine = 'jit' | 'interpreter';

export interface HartOptions {
  engine?: HartEngine;
  /**
   * A code cache made ahead for this RAM size. Its tables grow with RAM (about
   * 10 ms for 1 GiB), which a migration destination pays before the switchover.
   */
  code?: CodeCache;
}

export type { HartState } from './state.ts';

export class Hart {
  readonly hartId: number;
  readonly x = new Int32Array(32);
  /** uint32 address of the next instruction. */
  pc: number;
  time = 0;

  /** @internal */ readonly bus: HartBus;
  /** @internal */ readonly mem: RamViews;
  /** @internal */ readonly csr = new CsrFile();
  /** @internal */ readonly code: CodeCache;
  /** @internal The time at which the current run() must return. */
  end = 0;
  /** @internal The time compiled code must not pass: `end`, or when an interrupt becomes takeable. */
  limit = 0;
  private stopRequested = false;
  private readonly engine: HartEngine;

  constructor(hartId: number, bus: HartBus, options: HartOptions = {}) {
    if (!Number.isInteger(hartId) || hartId < 0) throw new HartArgumentError(`hartId must be an integer >= 0, got ${hartId}`);
    this.hartId = hartId;
    this.bus = bus;
    this.mem = ramViews(bus);
    if (options.code && options.code.ramSize !== this.mem.size) {
      throw new HartArgumentError(`the code cache is for ${options.code.ramSize} bytes of RAM, the hart has ${this.mem.size}`);
    }
    this.code = options.code ?? new CodeCache(this.mem.size);
    this.pc = bus.ramBase >>> 0;
    this.engine = options.engine ?? 'jit';
  }

  run(budget: number): StopReason {
    if (!Number.isSafeInteger(budget) || budget < 0) {
      throw new HartArgumentError(`run budget must be a safe integer >= 0, got ${budget}`);
    }
    this.end = this.time + budget;
    this.stopRequested = false;
    const jit = this.engine === 'jit';
    const { base, size } = this.mem;
    this.limit = this.nextStop();
    for (;;) {
      if (this.time >= this.limit) {
        if (this.time >= this.end) return 'budget';
        this.takePendingInterrupt();
        this.limit = this.nextStop();
        continue;
      }
      if (jit) {
        const off = (this.pc - base) >>> 0;
        if (off < size) {
          const region = this.code.lookup(off) ?? this.compile(off);
          const next = region();
          if ((next & 1) === 0) {
            this.pc = next >>> 0;
            continue;
          }
          this.pc = (next - 1) >>> 0;
          // A region hands over at a block that does not fit before the limit, too.
          if (this.time >= this.limit) continue;
        }
      }
      if (step(this) === STEP_HALTED) return 'wfi-halt';
      if (this.stopRequested) return 'mmio-stop';
      this.limit = this.nextStop();
    }
  }

  /** For MMIO callbacks: finish the current instruction, then return 'mmio-stop'. */
  requestStop(): void {
    this.stopRequested = true;
  }

  invalidateCode(ramOffset: number, length: number): void {
    this.code.invalidate(ramOffset, length);
  }

  save(): HartState {
    const c = this.csr;
    return {
      version: HART_STATE_VERSION,
      hartId: this.hartId,
      pc: this.pc,
      x: Array.from(this.x),
      time: this.time,
      csr: {
        mstatus: c.mstatus, mie: c.mie, mtvec: c.mtvec, mepc: c.mepc,
        mcause: c.mcause, mtval: c.mtval, mscratch: c.mscratch,
      },
    };
  }

  restore(s: HartState): void {
    const state = validateHartState(s, this.hartId);
    this.pc = state.pc;
    this.x.set(state.x);
    this.time = state.time;
    Object.assign(this.csr, state.csr);
    this.code.invalidateAll();
  }

  /**
   * The earliest time the dispatcher must look up from guest code: the end of
   * the budget, or now / mtimecmp if an interrupt is (or will become) takeable.
   */
  private nextStop(): number {
    const c = this.csr;
    let at = this.end;
    if ((c.mstatus & MSTATUS_MIE) !== 0) {
      if ((c.mie & MIP_MSIP) !== 0 && this.bus.softwareInterruptPending()) at = this.time;
      else if ((c.mie & MIP_MTIP) !== 0) at = Math.min(at, this.bus.timerCompare());
    }
    return at;
  }

  private compile(off: number): RegionFn {
    if (this.mem.gate !== null) ensurePresent(this.mem.gate, off, false);
    const plan = planRegion(this.mem.s32, off);
    const region = compileRegion(this, plan);
    this.code.insert(off, region, plan.sources);
    return region;
  }

  private takePendingInterrupt(): void {
    // Only reached when nextStop() put an interrupt before the budget's end.
    const software = (this.csr.mie & MIP_MSIP) !== 0 && this.bus.softwareInterruptPending();
    takeInterrupt(this, software ? INTERRUPT_MACHINE_SOFTWARE : INTERRUPT_MACHINE_TIMER);
  }
}

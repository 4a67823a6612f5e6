// Entering and leaving machine-mode traps: cause codes, mepc/mcause/mtval, the
// MIE/MPIE stack in mstatus, and direct or vectored mtvec.
import { MSTATUS_MIE, MSTATUS_MPIE } from './csr.ts';
import type { Hart } from './hart.ts';

export const CAUSE_INSTRUCTION_MISALIGNED = 0;
export const CAUSE_INSTRUCTION_ACCESS_FAULT = 1;
export const CAUSE_ILLEGAL_INSTRUCTION = 2;
export const CAUSE_BREAKPOINT = 3;
export const CAUSE_LOAD_MISALIGNED = 4;
export const CAUSE_LOAD_ACCESS_FAULT = 5;
export const CAUSE_STORE_MISALIGNED = 6;
export const CAUSE_STORE_ACCESS_FAULT = 7;
export const CAUSE_ECALL_M = 11;

/** mcause bit 31: the trap is an interrupt. */
export const CAUSE_INTERRUPT = 0x8000_0000;
export const INTERRUPT_MACHINE_SOFTWARE = 3;
export const INTERRUPT_MACHINE_TIMER = 7;

/** Take an exception raised by the instruction at h.pc. */
export function raiseException(h: Hart, cause: number, tval: number): void {
  enterTrap(h, cause, tval);
}

/** Take interrupt `code` before executing the instruction at h.pc. */
export function takeInterrupt(h: Hart, code: number): void {
  enterTrap(h, (CAUSE_INTERRUPT | code) >>> 0, 0);
}

function enterTrap(h: Hart, cause: number, tval: number): void {
  const c = h.csr;
  c.mepc = h.pc >>> 0;
  c.mcause = cause >>> 0;
  c.mtval = tval >>> 0;
  c.mstatus = (c.mstatus & MSTATUS_MIE) !== 0 ? MSTATUS_MPIE : 0;
  const base = (c.mtvec & ~3) >>> 0;
  const vectored = (c.mtvec & 1) === 1 && cause >= CAUSE_INTERRUPT;
  h.pc = vectored ? (base + 4 * (cause - CAUSE_INTERRUPT)) >>> 0 : base;
}

/** mret: back to mepc, MIE restored from MPIE, MPIE set. */
export function returnFromTrap(h: Hart): void {
  const c = h.csr;
  h.pc = c.mepc;
  c.mstatus = ((c.mstatus & MSTATUS_MPIE) !== 0 ? MSTATUS_MIE : 0) | MSTATUS_MPIE;
}

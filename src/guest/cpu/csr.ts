// The machine-mode CSRs of an RV32IM hart with no lower privilege modes: their
// numbers, which bits are writable (WARL), and the read-only counters that
// mirror the deterministic `time`.
import type { Hart } from './hart.ts';

export const CSR_MSTATUS = 0x300;
export const CSR_MISA = 0x301;
export const CSR_MIE = 0x304;
export const CSR_MTVEC = 0x305;
export const CSR_MSTATUSH = 0x310;
export const CSR_MSCRATCH = 0x340;
export const CSR_MEPC = 0x341;
export const CSR_MCAUSE = 0x342;
export const CSR_MTVAL = 0x343;
export const CSR_MIP = 0x344;
export const CSR_MCYCLE = 0xb00;
export const CSR_MINSTRET = 0xb02;
export const CSR_MCYCLEH = 0xb80;
export const CSR_MINSTRETH = 0xb82;
export const CSR_CYCLE = 0xc00;
export const CSR_TIME = 0xc01;
export const CSR_INSTRET = 0xc02;
export const CSR_CYCLEH = 0xc80;
export const CSR_TIMEH = 0xc81;
export const CSR_INSTRETH = 0xc82;
export const CSR_MVENDORID = 0xf11;
export const CSR_MARCHID = 0xf12;
export const CSR_MIMPID = 0xf13;
export const CSR_MHARTID = 0xf14;
export const CSR_MCONFIGPTR = 0xf15;

export const MSTATUS_MIE = 1 << 3;
export const MSTATUS_MPIE = 1 << 7;
/** MPP is hard-wired to M: there is no other mode to return to. */
const MSTATUS_MPP_M = 3 << 11;

export const MIP_MSIP = 1 << 3;
export const MIP_MTIP = 1 << 7;
export const MIP_MEIP = 1 << 11;

/** RV32 (MXL=1), I and M. */
export const MISA_RV32IM = (1 << 30) | (1 << 8) | (1 << 12);

const MIE_WRITABLE = MIP_MSIP | MIP_MTIP | MIP_MEIP;
const TWO_POW_32 = 0x1_0000_0000;

/** The CSRs that hold state; everything else is computed on read. Values are uint32. */
export class CsrFile {
  /** Only MIE and MPIE are stored; MPP reads as M. */
  mstatus = 0;
  mie = 0;
  mtvec = 0;
  mepc = 0;
  mcause = 0;
  mtval = 0;
  mscratch = 0;
}

/** mip as the guest sees it now: the CLINT's lines sampled at the current `time`. */
export function pendingInterrupts(h: Hart): number {
  let pending = 0;
  if (h.bus.softwareInterruptPending()) pending |= MIP_MSIP;
  if (h.time >= h.bus.timerCompare()) pending |= MIP_MTIP;
  return pending;
}

/** True when `n` names a CSR this hart implements. */
export function csrExists(n: number): boolean {
  switch (n) {
    case CSR_MSTATUS: case CSR_MISA: case CSR_MIE: case CSR_MTVEC: case CSR_MSTATUSH:
    case CSR_MSCRATCH: case CSR_MEPC: case CSR_MCAUSE: case CSR_MTVAL: case CSR_MIP:
    case CSR_MCYCLE: case CSR_MINSTRET: case CSR_MCYCLEH: case CSR_MINSTRETH:
    case CSR_CYCLE: case CSR_TIME: case CSR_INSTRET: case CSR_CYCLEH: case CSR_TIMEH: case CSR_INSTRETH:
    case CSR_MVENDORID: case CSR_MARCHID: case CSR_MIMPID: case CSR_MHARTID: case CSR_MCONFIGPTR:
      return true;
    default:
      return false;
  }
}

/** CSR numbers with bits 11:10 set are read-only by encoding; writing one is illegal. */
export function csrIsReadOnly(n: number): boolean {
  return (n >>> 10) === 3;
}

/** The value of an implemented CSR, as an int32 ready for a register. */
export function readCsr(h: Hart, n: number): number {
  const c = h.csr;
  switch (n) {
    case CSR_MSTATUS: return c.mstatus | MSTATUS_MPP_M;
    case CSR_MISA: return MISA_RV32IM;
    case CSR_MIE: return c.mie;
    case CSR_MTVEC: return c.mtvec | 0;
    case CSR_MSCRATCH: return c.mscratch | 0;
    case CSR_MEPC: return c.mepc | 0;
    case CSR_MCAUSE: return c.mcause | 0;
    case CSR_MTVAL: return c.mtval | 0;
    case CSR_MIP: return pendingInterrupts(h);
    case CSR_MHARTID: return h.hartId;
    case CSR_MCYCLE: case CSR_MINSTRET: case CSR_CYCLE: case CSR_TIME: case CSR_INSTRET:
      return h.time % TWO_POW_32 | 0;
    case CSR_MCYCLEH: case CSR_MINSTRETH: case CSR_CYCLEH: case CSR_TIMEH: case CSR_INSTRETH:
      return Math.floor(h.time / TWO_POW_32) | 0;
    default:
      return 0;
  }
}

/**
 * Write an implemented, writable CSR, keeping only legal values. misa, mip
 * (whose bits the CLINT drives), mstatush and the machine counters ignore
 * writes: the counters are `time`, which must stay the CLINT's deterministic clock.
 */
export function writeCsr(h: Hart, n: number, value: number): void {
  const c = h.csr;
  switch (n) {
    case CSR_MSTATUS: c.mstatus = value & (MSTATUS_MIE | MSTATUS_MPIE); break;
    case CSR_MIE: c.mie = value & MIE_WRITABLE; break;
    // Modes 2 and 3 are reserved; a WARL field keeps a legal value instead.
    case CSR_MTVEC: c.mtvec = ((value & 3) === 1 ? value : value & ~3) >>> 0; break;
    case CSR_MSCRATCH: c.mscratch = value >>> 0; break;
    // With IALIGN=32, mepc[1:0] are always zero.
    case CSR_MEPC: c.mepc = (value & ~3) >>> 0; break;
    case CSR_MCAUSE: c.mcause = value >>> 0; break;
    case CSR_MTVAL: c.mtval = value >>> 0; break;
    default: break;
  }
}

// The saved form of a hart: a plain, structured-cloneable object (it crosses
// worker and process boundaries), versioned and checked field by field on
// restore so a corrupt or foreign snapshot fails with the field's name.
//
//   HartState v1
//   +-----------+---------------------------------------------+
//   | version   | 1                                           |
//   | hartId    | mhartid of the hart it was saved from       |
//   | pc        | uint32, 4-byte aligned                      |
//   | x         | 32 × int32, x[0] = 0                        |
//   | time      | safe integer >= 0 (== CLINT mtime)          |
//   | csr       | mstatus mie mtvec mepc mcause mtval mscratch |
//   |           | (uint32 each, legal WARL values only)       |
//   +-----------+---------------------------------------------+
import { MIP_MEIP, MIP_MSIP, MIP_MTIP, MSTATUS_MIE, MSTATUS_MPIE } from './csr.ts';
import { HartStateError } from './errors.ts';

export const HART_STATE_VERSION = 1;

export interface HartCsrState {
  mstatus: number;
  mie: number;
  mtvec: number;
  mepc: number;
  mcause: number;
  mtval: number;
  mscratch: number;
}

export interface HartState {
  version: typeof HART_STATE_VERSION;
  hartId: number;
  pc: number;
  x: number[];
  time: number;
  csr: HartCsrState;
}

const CSR_FIELDS = ['mstatus', 'mie', 'mtvec', 'mepc', 'mcause', 'mtval', 'mscratch'] as const;

/** Bits each stored CSR may hold; anything else could not have come from a running hart. */
const CSR_LEGAL: Record<keyof HartCsrState, (v: number) => boolean> = {
  mstatus: (v) => (v & ~(MSTATUS_MIE | MSTATUS_MPIE)) === 0,
  mie: (v) => (v & ~(MIP_MSIP | MIP_MTIP | MIP_MEIP)) === 0,
  mtvec: (v) => (v & 3) <= 1,
  mepc: (v) => (v & 3) === 0,
  mcause: () => true,
  mtval: () => true,
  mscratch: () => true,
};

const isUint32 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff;
const isInt32 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= -0x8000_0000 && (v as number) <= 0x7fff_ffff;

function fail(field: string, why: string): never {
  throw new HartStateError(`cannot restore hart state: ${field} ${why}`);
}

/** Check `s` is a HartState for hart `hartId`; returns it typed. */
export function validateHartState(s: unknown, hartId: number): HartState {
  if (typeof s !== 'object' || s === null) fail('state', 'is not an object');
  const o = s as Record<string, unknown>;
  if (o.version !== HART_STATE_VERSION) {
    fail('version', `is ${String(o.version)}, this build reads version ${HART_STATE_VERSION}`);
  }
  if (o.hartId !== hartId) fail('hartId', `is ${String(o.hartId)}, restoring into hart ${hartId}`);
  if (!isUint32(o.pc) || (o.pc & 3) !== 0) fail('pc', `must be a 4-byte aligned uint32, got ${String(o.pc)}`);
  if (!Array.isArray(o.x) || o.x.length !== 32) fail('x', 'must be an array of 32 registers');
  o.x.forEach((v, i) => {
    if (!isInt32(v)) fail(`x[${i}]`, `must be an int32, got ${String(v)}`);
  });
  if (o.x[0] !== 0) fail('x[0]', 'must be 0');
  if (!Number.isSafeInteger(o.time) || (o.time as number) < 0) fail('time', `must be a safe integer >= 0, got ${String(o.time)}`);
  if (typeof o.csr !== 'object' || o.csr === null) fail('csr', 'is not an object');
  const csr = o.csr as Record<string, unknown>;
  for (const name of CSR_FIELDS) {
    const v = csr[name];
    if (!isUint32(v)) fail(`csr.${name}`, `must be a uint32, got ${String(v)}`);
    if (!CSR_LEGAL[name](v)) fail(`csr.${name}`, `holds bits no hart can set: 0x${v.toString(16)}`);
  }
  return s as HartState;
}

// The saved state of a whole machine (every hart and device, not RAM): what
// migration sends at switchover and what restore() reads into a fresh machine.
// Encoded as canonical JSON (keys sorted, 64-bit values as hex strings) behind
// a small binary header; the same canonical bytes feed stateHash().
//
//   encoded MachineState
//   +--------+---------------------------------------------------------------+
//   | 0      | u32 magic 0x534d4350 ("PCMS")                                 |
//   | 4      | u32 format version (1)                                        |
//   | 8      | u32 byte length N of the JSON body (capped at 256 KiB)        |
//   | 12     | N bytes of canonical JSON:                                    |
//   |        |   version        1                                            |
//   |        |   ramSize        bytes, 16 MiB .. 2 GiB                       |
//   |        |   vcpus          1 .. 4                                       |
//   |        |   harts[vcpus]   HartState (src/guest/cpu/state.ts)           |
//   |        |   clint          msip[4], mtimecmp[4] ("0x" + 16 hex digits)  |
//   |        |   uart           ier lcr mcr scr dll dlm fcr (bytes)          |
//   |        |   blockDevice    harts[4]: sector addr len status errno       |
//   |        |   finisher       status running|pass|fail|reset, code         |
//   |        |   consoleOffset  console bytes the guest has written so far   |
//   +--------+---------------------------------------------------------------+
import { validateHartState, type HartState } from './cpu/state.ts';
import type { BlockDeviceState } from './devices/block-device.ts';
import type { ClintState } from './devices/clint.ts';
import type { FinisherState, FinisherStatus } from './devices/finisher.ts';
import type { UartState } from './devices/uart.ts';
import { GuestStateError } from './errors.ts';
import { MAX_RAM_SIZE, MAX_VCPUS, MIN_RAM_SIZE, PAGE_SIZE } from './memory-map.ts';

export const MACHINE_STATE_VERSION = 1;
const MAGIC = 0x534d4350;
const HEADER_BYTES = 12;
export const MAX_STATE_BYTES = 256 * 1024;

export interface MachineState {
  version: typeof MACHINE_STATE_VERSION;
  ramSize: number;
  vcpus: number;
  harts: HartState[];
  clint: ClintState;
  uart: UartState;
  blockDevice: BlockDeviceState;
  finisher: FinisherState;
  consoleOffset: number;
}

/** Canonical JSON: sorted keys, bigint as 0x-prefixed 16-digit hex, no whitespace. */
function canonicalJson(value: unknown): string {
  if (typeof value === 'bigint') return JSON.stringify(`0x${value.toString(16).padStart(16, '0')}`);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The canonical byte form (header + JSON) of a state; equal states give equal bytes. */
export function encodeMachineState(state: MachineState): Uint8Array {
  const body = new TextEncoder().encode(canonicalJson(state));
  const out = new Uint8Array(HEADER_BYTES + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, MACHINE_STATE_VERSION, true);
  view.setUint32(8, body.length, true);
  out.set(body, HEADER_BYTES);
  return out;
}

/** Decodes and validates; every refusal names the field. */
export function decodeMachineState(bytes: Uint8Array): MachineState {
  if (bytes.length < HEADER_BYTES) throw new GuestStateError('header', `${bytes.length} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new GuestStateError('magic', 'is not "PCMS": this is not a saved machine state');
  const version = view.getUint32(4, true);
  if (version !== MACHINE_STATE_VERSION) throw new GuestStateError('version', `is ${version}, this build reads version ${MACHINE_STATE_VERSION}`);
  const length = view.getUint32(8, true);
  if (length > MAX_STATE_BYTES) throw new GuestStateError('length', `${length} bytes exceeds the ${MAX_STATE_BYTES}-byte cap`);
  if (HEADER_BYTES + length !== bytes.length) throw new GuestStateError('length', `header says ${length} body bytes, ${bytes.length - HEADER_BYTES} present`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(HEADER_BYTES)), (_key, v: unknown) =>
      typeof v === 'string' && /^0x[0-9a-f]{16}$/.test(v) ? BigInt(v) : v,
    );
  } catch (err) {
    throw new GuestStateError('body', `is not valid UTF-8 JSON: ${(err as Error).message}`);
  }
  return validateMachineState(parsed);
}

const isUint = (v: unknown, max = 0xffff_ffff): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;

function object(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new GuestStateError(field, 'is not an object');
  return v as Record<string, unknown>;
}

function array(v: unknown, field: string, length: number): unknown[] {
  if (!Array.isArray(v) || v.length !== length) throw new GuestStateError(field, `must be an array of ${length}`);
  return v;
}

function uint(v: unknown, field: string, max = 0xffff_ffff): number {
  if (!isUint(v, max)) throw new GuestStateError(field, `must be an integer from 0 to ${max}, got ${String(v)}`);
  return v;
}

const FINISHER_STATUSES: FinisherStatus[] = ['running', 'pass', 'fail', 'reset'];

/** Checks a structurally decoded state (e.g. from msgpack) field by field; returns it typed. */
export function validateMachineState(value: unknown): MachineState {
  const s = object(value, 'state');
  if (s.version !== MACHINE_STATE_VERSION) throw new GuestStateError('version', `is ${String(s.version)}, this build reads version ${MACHINE_STATE_VERSION}`);
  const ramSize = uint(s.ramSize, 'ramSize', MAX_RAM_SIZE);
  if (ramSize < MIN_RAM_SIZE || ramSize % PAGE_SIZE !== 0) throw new GuestStateError('ramSize', `${ramSize} is not a whole number of pages from 16 MiB to 2 GiB`);
  const vcpus = uint(s.vcpus, 'vcpus', MAX_VCPUS);
  if (vcpus < 1) throw new GuestStateError('vcpus', 'must be at least 1');
  const harts = array(s.harts, 'harts', vcpus);
  harts.forEach((h, i) => {
    try {
      validateHartState(h, i);
    } catch (err) {
      throw new GuestStateError(`harts[${i}]`, (err as Error).message, { cause: err });
    }
  });
  const clint = object(s.clint, 'clint');
  array(clint.msip, 'clint.msip', MAX_VCPUS).forEach((v, i) => uint(v, `clint.msip[${i}]`, 1));
  array(clint.mtimecmp, 'clint.mtimecmp', MAX_VCPUS).forEach((v, i) => {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new GuestStateError(`clint.mtimecmp[${i}]`, 'must be a 64-bit unsigned value');
  });
  const uart = object(s.uart, 'uart');
  for (const f of ['ier', 'lcr', 'mcr', 'scr', 'dll', 'dlm', 'fcr']) uint(uart[f], `uart.${f}`, 0xff);
  const block = object(s.blockDevice, 'blockDevice');
  array(block.harts, 'blockDevice.harts', MAX_VCPUS).forEach((h, i) => {
    const regs = object(h, `blockDevice.harts[${i}]`);
    for (const f of ['sector', 'addr', 'len', 'status', 'errno']) uint(regs[f], `blockDevice.harts[${i}].${f}`);
  });
  const finisher = object(s.finisher, 'finisher');
  if (!FINISHER_STATUSES.includes(finisher.status as FinisherStatus)) throw new GuestStateError('finisher.status', `must be one of ${FINISHER_STATUSES.join(', ')}`);
  uint(finisher.code, 'finisher.code', 0xffff);
  uint(s.consoleOffset, 'consoleOffset', Number.MAX_SAFE_INTEGER);
  return value as MachineState;
}

// The guest parameter block: how `--guest-args` reach a program. Placed in
// the last 4 KiB page of RAM; its address goes to every hart in a1. Without
// one, a1 = 0 and programs use their defaults (on QEMU a1 holds a device tree
// address, which programs tell apart by the magic).
//
//   +0  u32 magic 0x41504350 ("PCPA")
//   +4  u32 length of the whole block in bytes
//   +8  u32 RAM size in bytes
//   +12 u32 number of harts
//   +16 args: "key=value key=value", NUL-terminated ASCII
import { GuestConfigError } from './errors.ts';
import { PAGE_SIZE, RAM_BASE, type GuestAddress } from './memory-map.ts';

export const PARAMS_MAGIC = 0x41504350;
const HEADER_SIZE = 16;
export const MAX_GUEST_ARGS = PAGE_SIZE - HEADER_SIZE - 1;

export function paramsAddress(ramSize: number): GuestAddress {
  return (RAM_BASE + ramSize - PAGE_SIZE) as GuestAddress;
}

export function validateGuestArgs(args: string): string {
  if (args.length > MAX_GUEST_ARGS) throw new GuestConfigError(`guest args are ${args.length} characters; at most ${MAX_GUEST_ARGS} fit the parameter page`);
  if (!/^[\x20-\x7e]*$/.test(args)) throw new GuestConfigError('guest args must be printable ASCII ("key=value key=value")');
  return args;
}

/** The block's bytes, to be written at paramsAddress(ramSize). */
export function encodeParams(args: string, ramSize: number, harts: number): Uint8Array {
  validateGuestArgs(args);
  const length = HEADER_SIZE + args.length + 1;
  const block = new Uint8Array(length);
  const view = new DataView(block.buffer);
  view.setUint32(0, PARAMS_MAGIC, true);
  view.setUint32(4, length, true);
  view.setUint32(8, ramSize, true);
  view.setUint32(12, harts, true);
  block.set(new TextEncoder().encode(args), HEADER_SIZE);
  return block;
}

// The M extension's operations on int32 values, with RISC-V's results for the
// cases JavaScript answers differently (division by zero, high product words).
// Both the interpreter and compiled blocks call these; V8 inlines them.

/** High 32 bits of the unsigned 64-bit product, as an int32. */
export function mulhu(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const lo = al * bl;
  const mid1 = ah * bl;
  const mid2 = al * bh;
  const carry = ((lo >>> 16) + (mid1 & 0xffff) + (mid2 & 0xffff)) >>> 16;
  return (ah * bh + (mid1 >>> 16) + (mid2 >>> 16) + carry) | 0;
}

/** High 32 bits of the signed × signed product. */
export function mulh(a: number, b: number): number {
  return (mulhu(a, b) - (a < 0 ? b : 0) - (b < 0 ? a : 0)) | 0;
}

/** High 32 bits of the signed (a) × unsigned (b) product. */
export function mulhsu(a: number, b: number): number {
  return (mulhu(a, b) - (a < 0 ? b : 0)) | 0;
}

// INT_MIN / -1 needs no special case: 2^31 | 0 wraps back to INT_MIN, and
// INT_MIN % -1 is -0, which | 0 turns into the 0 RISC-V wants.
export function div(a: number, b: number): number {
  return b === 0 ? -1 : (a / b) | 0;
}

export function divu(a: number, b: number): number {
  return b === 0 ? -1 : ((a >>> 0) / (b >>> 0)) | 0;
}

export function rem(a: number, b: number): number {
  return b === 0 ? a : (a % b) | 0;
}

export function remu(a: number, b: number): number {
  return b === 0 ? a : ((a >>> 0) % (b >>> 0)) | 0;
}

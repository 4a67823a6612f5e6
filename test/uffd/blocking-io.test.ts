// The page threads' socket syscalls in the addon (blocking-io.c): writev takes
// its chunks as arguments after the fd, 1 to 8 of them, and writes them in
// order; readBytes reads into a range of a buffer, never past it.
import { describe, expect, it } from 'vitest';
import { loadNative, nativeAvailable } from '../../src/uffd/native.ts';

describe.skipIf(!nativeAvailable())('the addon on a socket pair', () => {
  it('writes the chunks passed to writev in order, refusing none or more than 8, and reads them into a range', () => {
    const native = loadNative();
    const [a, b] = native.socketPair();
    try {
      const chunks = Array.from({ length: 8 }, (_, i) => Buffer.alloc(i + 1, 0x30 + i));
      expect(native.writev(a, ...chunks)).toBe(36);
      const got = Buffer.alloc(64);
      expect(native.readBytes(b, got, 10, 20)).toBe(20);
      expect(native.readBytes(b, got, 30, 34)).toBe(16);
      expect(got.subarray(10, 46)).toEqual(Buffer.concat(chunks));
      expect(got.subarray(0, 10)).toEqual(Buffer.alloc(10));
      expect(() => native.readBytes(b, got, 60, 5)).toThrow(/outside the buffer/);
      expect(() => native.readBytes(b, got, 65, 0)).toThrow(/outside the buffer/);
      expect(() => native.writev(a)).toThrow(/Usage: writev/);
      expect(() => native.writev(a, ...chunks, Buffer.from('9'))).toThrow(/Usage: writev/);
      expect(() => native.writev(a, 'text' as unknown as Uint8Array)).toThrow(/Usage: writev/);
    } finally {
      native.close(a);
      native.close(b);
    }
  });
});

// The page threads' socket syscalls in the addon (blocking-io.c): writev takes
// its chunks as arguments after the fd, 1 to 8 of them, and writes them in order.
import { describe, expect, it } from 'vitest';
import { loadNative, nativeAvailable } from '../../src/uffd/native.ts';

describe.skipIf(!nativeAvailable())('the addon on a socket pair', () => {
  it('writes the chunks passed to writev in order, and refuses none or more than 8', () => {
    const native = loadNative();
    const [a, b] = native.socketPair();
    try {
      const chunks = Array.from({ length: 8 }, (_, i) => Buffer.alloc(i + 1, 0x30 + i));
      expect(native.writev(a, ...chunks)).toBe(36);
      const got = Buffer.alloc(64);
      expect(native.readBytes(b, got)).toBe(36);
      expect(got.subarray(0, 36)).toEqual(Buffer.concat(chunks));
      expect(() => native.writev(a)).toThrow(/Usage: writev/);
      expect(() => native.writev(a, ...chunks, Buffer.from('9'))).toThrow(/Usage: writev/);
      expect(() => native.writev(a, 'text' as unknown as Uint8Array)).toThrow(/Usage: writev/);
    } finally {
      native.close(a);
      native.close(b);
    }
  });
});

// A page thread writes over present pages (a later precopy round's) through
// the addon, not a view: a view of all of RAM would count its whole length
// toward V8's next full collection, which then landed mid-switchover.
import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { pageThreadRegion } from '../../src/destination/page-service.ts';
import { loadNative, nativeAvailable } from '../../src/uffd/native.ts';

const PAGE = 4096;
const RAM = 256 << 20;
if (!nativeAvailable()) console.log('page-thread region test skipped: the native addon does not load');

describe.skipIf(!nativeAvailable())('a page thread’s guest RAM', () => {
  it('writes and zeroes exactly the pages asked, without a view V8 would count', () => {
    const native = loadNative();
    const address = native.mmap(RAM);
    try {
      const ram = new Uint8Array(native.view(address, RAM));
      ram.fill(0xee, 0, 8 * PAGE);
      const before = getHeapStatistics().external_memory;
      const region = pageThreadRegion(address, RAM);
      region.write(2 * PAGE, new Uint8Array(2 * PAGE).fill(0x11));
      region.zero(5 * PAGE, PAGE);
      region.write(RAM - PAGE, new Uint8Array(PAGE).fill(0x22));
      expect(getHeapStatistics().external_memory - before).toBeLessThan(RAM / 16);
      const firstByteOf = (page: number): number => ram[page * PAGE];
      expect([0, 1, 2, 3, 4, 5, 6].map(firstByteOf)).toEqual([0xee, 0xee, 0x11, 0x11, 0xee, 0, 0xee]);
      expect([ram[4 * PAGE - 1], ram[5 * PAGE], ram[6 * PAGE - 1], ram[RAM - 1]]).toEqual([0x11, 0, 0, 0x22]);
      expect(() => region.write(RAM - PAGE, new Uint8Array(2 * PAGE))).toThrow(RangeError);
      expect(() => region.zero(-PAGE, PAGE)).toThrow(RangeError);
      expect(ram[RAM - PAGE]).toBe(0x22);
    } finally {
      native.munmap(address, RAM);
    }
  });
});

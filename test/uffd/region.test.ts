import { describe, expect, it } from 'vitest';
import { startWorker, workerResult } from '../../src/worker.ts';
import { allocateRegion, type Backend } from '../../src/uffd/region.ts';
import { nativeAvailable } from '../../src/uffd/native.ts';

const backends: Backend[] = nativeAvailable() ? ['kernel', 'sim'] : ['sim'];
if (!backends.includes('kernel')) console.log('region tests: kernel backend skipped, the native addon does not load');

const writer = new URL('./fixtures/region-writer.ts', import.meta.url);

describe.each(backends)('guest RAM region (%s)', (backend) => {
  it('is shared zero-copy with a worker thread: what the worker writes the main thread reads', async () => {
    const region = allocateRegion(16 * 4096, backend);
    try {
      expect(region.address % 4096).toBe(0);
      const worker = startWorker(writer, { handle: region.handle, pages: [0, 3, 15], value: 0x5a });
      const reply = await workerResult<{ byteLength: number }>(worker);
      expect(reply.byteLength).toBe(region.length);
      const bytes = region.bytes();
      expect([bytes[0], bytes[3 * 4096], bytes[15 * 4096], bytes[4096]]).toEqual([0x5a, 0x5a, 0x5a, 0]);
    } finally {
      region.release();
    }
  });

  it('discard drops the bytes of a page range', () => {
    const region = allocateRegion(4 * 4096, backend);
    const bytes = region.bytes();
    bytes.fill(7);
    region.discard(4096, 2 * 4096);
    expect([bytes[0], bytes[4096], bytes[2 * 4096 + 5], bytes[3 * 4096]]).toEqual([7, 0, 0, 7]);
    region.release();
    region.release();
  });

  it('refuses lengths and discard ranges that are not whole pages', () => {
    expect(() => allocateRegion(100, backend)).toThrow(expect.objectContaining({ code: 'UFFD_ERR_RANGE' }));
    const region = allocateRegion(4096, backend);
    expect(() => region.discard(0, 8192)).toThrow(expect.objectContaining({ code: 'UFFD_ERR_RANGE' }));
    region.release();
  });
});

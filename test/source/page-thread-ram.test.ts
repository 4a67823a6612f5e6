// A source page thread started for the machine's RAM makes its view of it at
// once (page-thread-worker.ts), so that the collection V8 runs for a large
// new external buffer falls while the source waits. A migration's 'serve'
// brings the same region as a fresh structured clone: it must get that view
// back, not a new one; any other RAM gets a view of its own.
import { describe, expect, it } from 'vitest';
import { ramFromRegion } from '../../src/guest/ram.ts';
import { ramViews } from '../../src/source/page-thread-worker.ts';
import { nativeAvailable } from '../../src/uffd/native.ts';
import { allocateRegion } from '../../src/uffd/region.ts';

const PAGE = 4096;

describe.skipIf(!nativeAvailable())('a page thread view of guest RAM', () => {
  it('is made once for the machine RAM and handed out again for a copy of its handle', () => {
    const machine = allocateRegion(16 * PAGE, 'kernel');
    const other = allocateRegion(16 * PAGE, 'kernel');
    try {
      const handle = ramFromRegion(machine).handle;
      const views = ramViews(handle);
      const first = views(structuredClone(handle), 8 * PAGE);
      const again = views(structuredClone(handle), 16 * PAGE);
      expect(again.buffer).toBe(first.buffer);
      expect([first.length, again.length]).toEqual([8 * PAGE, 16 * PAGE]);
      machine.bytes()[5 * PAGE] = 42;
      expect(again[5 * PAGE]).toBe(42);
      const elsewhere = views(ramFromRegion(other).handle, 16 * PAGE);
      expect(elsewhere.buffer).not.toBe(first.buffer);
      other.bytes()[PAGE] = 7;
      expect(elsewhere[PAGE]).toBe(7);
      // A thread started with no RAM makes a view per migration.
      const none = ramViews(undefined);
      expect(none(handle, PAGE).buffer).not.toBe(none(handle, PAGE).buffer);
    } finally {
      machine.release();
      other.release();
    }
  });
});

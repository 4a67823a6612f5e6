// One suite, every backend: what destination code relies on from a userfaultfd.
import { afterEach, describe, expect, it } from 'vitest';
import { ACCESS_PATHS } from '../../src/uffd/userfaultfd.ts';
import { Harness, PAGE, pagePattern, patternWord, probePaths } from './helpers.ts';

const paths = probePaths(ACCESS_PATHS);
for (const { path, reason } of paths) {
  if (reason) console.log(`uffd conformance: skipping backend "${path}": ${reason}`);
}
// The two backends get every test; the other kernel access paths differ from
// "dev" only in how the fd was obtained, so they run the core subset.
const FULL = new Set(['dev', 'sim']);
const subset = paths.filter((p) => !FULL.has(p.path) && p.reason === null).map((p) => p.path);
if (subset.length > 0) {
  console.log(`uffd conformance: ${subset.join(', ')} run the core tests only (same kernel backend as "dev")`);
}

describe.each(paths)('userfaultfd conformance ($path)', ({ path, reason }) => {
  let h: Harness;
  afterEach(async () => {
    await h?.dispose();
  });
  const core = it.skipIf(reason !== null);
  const full = FULL.has(path) ? core : it.skip;

  core('a worker that touches missing pages resumes with exactly the bytes placed', async () => {
    h = new Harness(path, 64);
    h.register();
    h.serveWithPattern();
    const pages = [5, 17, 3, 63, 0];
    const { result } = h.touch(pages);
    const r = await result;
    expect(r.error).toBeNull();
    expect(r.seen).toEqual(pages.map((p) => patternWord(p)));
    expect(h.faults.map((f) => f.address)).toEqual(pages.map((p) => h.at(p)));
    for (const f of h.faults) {
      expect(f.write).toBe(false);
      expect(f.threadId).toBeGreaterThan(0);
    }
  });

  full('a write fault is reported as a write', async () => {
    h = new Harness(path, 4);
    h.register();
    h.serveWithPattern();
    const r = await h.touch([2], true).result;
    expect(r.seen).toEqual([patternWord(2)]);
    expect(h.faults.map((f) => [f.address, f.write])).toEqual([[h.at(2), true]]);
  });

  full('zeropage resolves a fault with a page of zeros', async () => {
    h = new Harness(path, 8);
    h.register();
    h.uffd.on('events', (batch) => {
      for (const e of batch) if (e.type === 'pagefault') h.uffd.zeropage(e.address, PAGE);
    });
    const r = await h.touch([6]).result;
    expect(r.seen).toEqual([0]);
    expect(h.uffd.copy(h.at(6), pagePattern(6))).toEqual({ bytes: 0, existed: PAGE });
  });

  core('pages placed with DONTWAKE wake nobody until one WAKE for the range', async () => {
    h = new Harness(path, 8);
    h.register();
    const fault = h.nextFault();
    const toucher = h.touch([2, 3, 4, 5]);
    expect((await fault).address).toBe(h.at(2));
    for (const p of [2, 3, 4, 5]) {
      expect(h.uffd.copy(h.at(p), pagePattern(p), { wake: false })).toEqual({ bytes: PAGE, existed: 0 });
    }
    expect(Atomics.load(toucher.progress, 0)).toBe(0);
    h.uffd.wake(h.at(2), 4 * PAGE);
    const r = await toucher.result;
    expect(r.seen).toEqual([2, 3, 4, 5].map((p) => patternWord(p)));
    expect(h.faults).toHaveLength(1);
  });

  full('when two placements race, the first wins and the second reports EEXIST as success', async () => {
    h = new Harness(path, 8);
    h.register();
    const fault = h.nextFault();
    const toucher = h.touch([1]);
    await fault;
    expect(h.uffd.copy(h.at(1), pagePattern(1), { wake: false })).toEqual({ bytes: PAGE, existed: 0 });
    // The loser's EEXIST wakes the sleeper the winner left asleep.
    expect(h.uffd.copy(h.at(1), pagePattern(1, 0x11))).toEqual({ bytes: 0, existed: PAGE });
    expect((await toucher.result).seen).toEqual([patternWord(1)]);

    const run = new Uint8Array(3 * PAGE);
    for (let i = 0; i < 3; i++) run.set(pagePattern(i, 0x22), i * PAGE);
    expect(h.uffd.copy(h.at(0), run)).toEqual({ bytes: 2 * PAGE, existed: PAGE });
    const words = h.region.bytes();
    const word = (p: number): number => new DataView(words.buffer, words.byteOffset).getUint32(p * PAGE, true);
    expect([word(0), word(1), word(2)]).toEqual([patternWord(0, 0x22), patternWord(1), patternWord(2, 0x22)]);
  });

  full('many workers faulting at once each resume with the right bytes', async () => {
    h = new Harness(path, 256);
    h.register();
    h.serveWithPattern();
    const plans = [0, 1, 2, 3].map((w) => Array.from({ length: 24 }, (_, i) => (i * 37 + w * 11) % 256));
    const results = await Promise.all(plans.map((pages) => h.touch(pages).result));
    results.forEach((r, w) => {
      expect(r.error).toBeNull();
      expect(r.seen).toEqual(plans[w].map((p) => patternWord(p)));
    });
    expect(new Set(results.map((r) => r.threadId)).size).toBe(4);
  });

  full('after unregister, pages read as zeros without a fault', async () => {
    h = new Harness(path, 8);
    h.register();
    h.uffd.unregister(h.at(4), 4 * PAGE);
    const r = await h.touch([5, 7]).result;
    expect(r.seen).toEqual([0, 0]);
    expect(h.faults).toHaveLength(0);
  });

  full('unregistering a range wakes a thread asleep on it', async () => {
    h = new Harness(path, 8);
    h.register();
    const fault = h.nextFault();
    const toucher = h.touch([3]);
    await fault;
    h.uffd.unregister(h.region.address, h.region.length);
    expect((await toucher.result).seen).toEqual([0]);
  });

  full('a WAKE after the range was unregistered does nothing: a fault event read late may still ask for one', async () => {
    h = new Harness(path, 8);
    h.register();
    h.uffd.unregister(h.region.address, h.region.length);
    expect(() => h.uffd.wake(h.at(3), PAGE)).not.toThrow();
  });

  full('register on a bad range gives a clear error', async () => {
    h = new Harness(path, 4);
    expect(() => h.uffd.register(h.region.address + 1, PAGE)).toThrow(
      expect.objectContaining({ code: 'UFFD_ERR_RANGE', message: expect.stringMatching(/multiples of 4096/) }),
    );
    expect(() => h.uffd.register(PAGE, PAGE)).toThrow(expect.objectContaining({ code: 'UFFD_ERR_RANGE', errno: 'EINVAL' }));
    expect(() => h.uffd.copy(h.at(0), pagePattern(0))).toThrow(expect.objectContaining({ code: 'UFFD_ERR_RANGE' }));
  });

  full('a range registered with one userfaultfd is refused to another (EBUSY)', async () => {
    h = new Harness(path, 4);
    h.register();
    const other = new Harness(path, 1);
    try {
      expect(() => other.uffd.register(h.region.address, PAGE)).toThrow(
        expect.objectContaining({ code: 'UFFD_ERR_BUSY', errno: 'EBUSY' }),
      );
    } finally {
      await other.dispose();
    }
  });

  core('closing with a vCPU asleep on a fault wakes it with UFFD_ERR_CLOSED', async () => {
    h = new Harness(path, 8);
    h.register();
    const fault = h.nextFault();
    const toucher = h.touch([6]);
    await fault;
    h.uffd.close();
    expect(await toucher.result).toMatchObject({ seen: [], error: 'UFFD_ERR_CLOSED' });
    expect(() => h.uffd.copy(h.at(6), pagePattern(6))).toThrow(expect.objectContaining({ code: 'UFFD_ERR_CLOSED' }));
  });

  full('closing after every page was placed does not abort the region', async () => {
    h = new Harness(path, 2);
    h.register();
    h.uffd.copy(h.at(0), new Uint8Array(2 * PAGE).fill(3));
    h.uffd.close();
    const r = await h.touch([0, 1]).result;
    expect(r).toMatchObject({ seen: [0x03030303, 0x03030303], error: null });
  });
});

import { describe, expect, it } from 'vitest';
import { fillPage, PAGE } from './pattern.ts';
import { startPair, switchover, type Pair } from './harness.ts';

const backends = ['kernel', 'sim'] as const;

function shuffled(n: number, seed: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let s = seed;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** A first precopy round: every page queued on bulk (not yet known to be placed). */
async function precopyEveryPage(pair: Pair, pages: number): Promise<void> {
  pair.sourceState.moveTo('precopy-active');
  await pair.command({ type: 'precopy-begin' });
  await pair.server.sendPrecopy(Array.from({ length: pages }, (_, i) => i));
}

describe.each(backends)('postcopy page transfer (%s backend)', (backend) => {
  it('vCPUs touching random pages read exactly the source bytes while the bulk push runs', async () => {
    const pair = await startPair({ backend, pages: 4096 });
    try {
      await switchover(pair);
      pair.startPush();
      const results = await Promise.all([0, 1, 2, 3].map((w) => pair.touch(shuffled(4096, w + 1).slice(0, 600))));
      for (const r of results) expect(r).toMatchObject({ wrong: [], checked: 600 });
      expect(await pair.completed).toBe(4096);
      expect(pair.destState.state).toBe('completed');
      // Unregistered and all present: now (and only now) the main thread may read RAM.
      expect(Buffer.compare(pair.region.bytes(), pair.ram)).toBe(0);
      const f = pair.server.figures;
      expect(f.zeroPages).toBeGreaterThanOrEqual(Math.floor(4096 / 7));
      expect(f.normalPages + f.zeroPages).toBeGreaterThanOrEqual(4096);
      expect(f.remainingPages).toBe(0);
      expect(pair.incoming.faults.stats.summary().count).toBe(pair.incoming.faults.figures.faults - pair.incoming.faults.figures.lateFaults);
    } finally {
      await pair.close();
    }
  });

  it('asks once per page however many vCPUs fault on it, and zero pages arrive as markers', async () => {
    const pair = await startPair({ backend, pages: 512 });
    try {
      await switchover(pair);
      const pages = Array.from({ length: 70 }, (_, i) => 100 + i);
      const results = await Promise.all([0, 1, 2, 3].map(() => pair.touch(pages)));
      for (const r of results) expect(r.wrong).toEqual([]);
      // No background push: every page came through exactly one request.
      expect(pair.server.figures.requestedPages).toBe(pages.length);
      expect(pair.incoming.faults.figures.requestedPages).toBe(pages.length);
      expect(pair.server.figures.urgentPages).toBe(pages.length);
      const zeros = pages.filter((p) => p % 7 === 3).length;
      expect(pair.server.figures.zeroPages).toBe(zeros);
      expect(pair.incoming.placer.figures.zeroPages).toBe(zeros);
      expect(pair.incoming.placer.figures.zeropageIoctls).toBe(zeros);
      // Blocktime counts every sleeping vCPU, so it is at least the latency sum of distinct faults.
      const stats = pair.incoming.faults.stats;
      expect(stats.summary().count).toBeGreaterThanOrEqual(pages.length);
      expect(stats.blocktimeMs).toBeGreaterThan(0);
    } finally {
      await pair.close();
    }
  });

  it('places a run of consecutive pages with one ioctl', async () => {
    const pair = await startPair({ backend, pages: 1024, server: { maxPagesPerFrame: 64 } });
    try {
      await switchover(pair);
      pair.startPush();
      await pair.completed;
      const placer = pair.incoming.placer.figures;
      // Bulk frames hold up to 64 same-kind pages; one copy per data frame at most.
      expect(placer.copyIoctls).toBeLessThan(pair.server.figures.normalPages / 4);
      expect(placer.placedPages).toBe(1024);
    } finally {
      await pair.close();
    }
  });

  it('answers precopy-sync only once every precopy page sent before it is in RAM, overwrites included', async () => {
    const pages = 512;
    const pair = await startPair({ backend, pages });
    try {
      await precopyEveryPage(pair, pages);
      // A second round re-sends pages the guest wrote since: they land over the first round's.
      const dirty = [7, 8, 100, 511];
      for (const p of dirty) fillPage(pair.ram.subarray(p * PAGE, (p + 1) * PAGE), p, 1);
      await pair.server.sendPrecopy(dirty);
      // Both rounds are only queued on bulk when the sync goes out on control.
      await pair.command({ type: 'precopy-sync', pages: pair.server.precopyPagesSent });
      expect(pair.incoming.placer.figures.precopyPages).toBe(pages + dirty.length);
      expect(pair.incoming.placer.figures.overwrittenPages).toBe(dirty.length);
      expect(pair.incoming.placer.received.count).toBe(pages);
      await switchover(pair);
      const r = await pair.touch(shuffled(pages, 3), Object.fromEntries(dirty.map((p) => [p, 1])));
      expect(r).toMatchObject({ wrong: [], checked: pages });
      expect(pair.server.figures.requestedPages).toBe(0);
      expect(await pair.completed).toBe(pages);
    } finally {
      await pair.close();
    }
  });

  it('discarded pages fault again and bring the bytes the source has now', async () => {
    const pages = 512;
    const pair = await startPair({ backend, pages });
    try {
      await precopyEveryPage(pair, pages);
      await pair.command({ type: 'precopy-sync', pages: pair.server.precopyPagesSent });
      // The guest dirties some pages after they were sent.
      const dirty = [10, 11, 12, 200, 201, 300];
      for (const p of dirty) fillPage(pair.ram.subarray(p * PAGE, (p + 1) * PAGE), p, 1);
      const runs = [10, 3, 200, 2, 300, 1];
      pair.server.forget(runs);
      await pair.command({ type: 'discard', runs });
      expect(pair.incoming.placer.figures.discardedPages).toBe(dirty.length);
      expect(pair.incoming.placer.received.count).toBe(pages - dirty.length);
      await switchover(pair);
      const generations = Object.fromEntries(dirty.map((p) => [p, 1]));
      const r = await pair.touch([...dirty, 0, 1, 2, 3], generations);
      expect(r.wrong).toEqual([]);
      expect(pair.server.figures.requestedPages).toBe(dirty.length);
      expect(await pair.completed).toBe(pages);
    } finally {
      await pair.close();
    }
  });
});

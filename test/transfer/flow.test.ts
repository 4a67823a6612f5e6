import { describe, expect, it } from 'vitest';
import { BulkIntake } from '../../src/destination/bulk-intake.ts';
import { pageIndex } from '../../src/protocol/layout.ts';
import type { PageFrame } from '../../src/protocol/messages.ts';
import { maxPageFrameBytes } from '../../src/protocol/page-frame.ts';
import { startPair, switchover } from './harness.ts';

const turn = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

/** Waits until `read` stops changing for a few turns (the pusher stalled). */
async function stalled(read: () => number): Promise<number> {
  let last = -1;
  let same = 0;
  while (same < 5) {
    await turn();
    const now = read();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}

describe('flow control', () => {
  it('the push stops when the destination stops reading, and goes on once it reads again', async () => {
    const pages = 16384; // 64 MiB: more than loopback socket buffers hold
    const pair = await startPair({ backend: 'sim', pages, server: { highWaterMark: 512 * 1024 } });
    try {
      await switchover(pair);
      pair.destChannels.bulk.pause();
      pair.startPush();
      const sentWhileBlocked = await stalled(() => pair.server.figures.bulkPages);
      expect(sentWhileBlocked).toBeLessThan(pages);
      pair.destChannels.bulk.resume();
      expect(await pair.completed).toBe(pages);
      expect(Buffer.compare(pair.region.bytes(), pair.ram)).toBe(0);
      // The destination's intake paused the socket rather than queueing without
      // bound: at most its 16 frames plus the one socket read ws was parsing.
      expect(pair.incoming.bulkHighestQueued.bytes).toBeLessThanOrEqual(16 * maxPageFrameBytes(4096) + 65536);
    } finally {
      await pair.close();
    }
  });

  it('the bulk intake pauses its socket when full and resumes once drained', async () => {
    const calls: string[] = [];
    const placed: number[] = [];
    const intake = new BulkIntake(
      { pause: () => calls.push('pause'), resume: () => calls.push('resume') },
      (f) => placed.push(f.start),
      4,
    );
    const frame = (i: number): PageFrame => ({ type: 'zero-run', start: pageIndex(i), count: 1, precopy: false });
    for (let i = 0; i < 6; i++) intake.push(frame(i));
    expect(calls).toEqual(['pause']);
    expect(intake.queued).toBe(6);
    while (intake.queued > 0) await new Promise((r) => setImmediate(r));
    expect(calls).toEqual(['pause', 'resume']);
    expect(placed).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

describe('recovery after the connection breaks in postcopy', () => {
  it('resumes where it stopped: waiting vCPUs get their pages and only missing pages flow again', async () => {
    const pages = 2048;
    const pair = await startPair({ backend: 'sim', pages });
    try {
      await switchover(pair);
      const first = await pair.touch(Array.from({ length: 100 }, (_, i) => i * 3));
      expect(first.wrong).toEqual([]);
      await pair.breakConnection();
      expect(pair.destState.state).toBe('postcopy-paused');
      expect(pair.sourceState.state).toBe('postcopy-paused');
      // vCPUs fault while the link is down: their requests wait for the reconnect.
      const blocked = Promise.all([1000, 1001, 1500].map((p) => pair.touch([p])));
      while (pair.incoming.faults.outstanding < 3) await turn();
      expect(pair.incoming.faults.figures.requests).toBe(100);
      const held = pair.incoming.placer.received.count;
      const sentBefore = pair.server.figures.normalPages + pair.server.figures.zeroPages;
      await pair.reconnect();
      for (const r of await blocked) expect(r.wrong).toEqual([]);
      pair.startPush();
      expect(await pair.completed).toBe(pages);
      const sentAfter = pair.server.figures.normalPages + pair.server.figures.zeroPages - sentBefore;
      expect(sentAfter).toBe(pages - held);
      expect(Buffer.compare(pair.region.bytes(), pair.ram)).toBe(0);
    } finally {
      await pair.close();
    }
  });
});

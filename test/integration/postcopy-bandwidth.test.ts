// --max-postcopy-bandwidth (QEMU's max-postcopy-bandwidth) between two real
// processes: the capped push still delivers a guest that ends exactly where
// an unmigrated one does, and it cannot have been faster than its cap. A
// guest that barely runs after the switchover leaves nearly every page to
// the push, which uncapped takes about 0.1 s here.
import { describe, expect, it } from 'vitest';
import { PAGE_FRAME_HEADER_BYTES } from '../../src/protocol/page-frame.ts';
import { demo, postcopy } from './processes.ts';

const PAGE = 4096;
const CAP = 4 * 1024 * 1024;
// The bucket's size: one full bulk frame (64 pages) saved up beforehand may go at once, and
// one more frame goes whenever the bucket is not in debt: rate * t + 2 frames at most.
const BURST = PAGE_FRAME_HEADER_BYTES + 64 * PAGE;

describe('postcopy with a capped background push', () => {
  it('migrates intact, no faster than the cap allows', async () => {
    const s = await demo([
      '--guest', 'memwork', '--guest-args', 'wss=8M pattern=sequential write=50 passes=0 beat=4',
      '--ram', '32M', '--uffd', 'dev', '--after-instructions', '3000000', '--instructions', '3100000',
      '--max-postcopy-bandwidth', '4M',
    ]);
    expect(s.verified).toBe(true);
    // Data pages that came by the push, at least: requested ones are uncapped, and some may have come both ways.
    const pushedBytes = (s.normalPages - s.postcopyRequests) * PAGE;
    expect(pushedBytes).toBeGreaterThan(16 * BURST);
    // A lower bound only: a slow machine takes longer, never shorter.
    expect(s.totalMs).toBeGreaterThanOrEqual((1000 * (pushedBytes - 2 * BURST)) / CAP);
  });

  it('refuses a cap it cannot read, naming the option and the form it wants', async () => {
    const r = await postcopy(['demo', '--max-postcopy-bandwidth', 'fast']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--max-postcopy-bandwidth.*"fast" is not understood: write a number with an optional K, M or G suffix/);
  });
});

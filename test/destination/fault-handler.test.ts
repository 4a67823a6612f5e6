// The fault thread hands FaultHandler the events of each wake-up at once:
// their missing pages go out as one request before the call returns (not
// after the poll loop's turn, from the microtask queue), a page two vCPUs
// fault on is asked for once, and events that are not missing-page faults
// ask for nothing. A lone fault still waits for the end of the task, so
// that faults raised in the same task share one request.
import { describe, expect, it } from 'vitest';
import { FaultHandler } from '../../src/destination/fault-handler.ts';
import type { PagePlacer } from '../../src/destination/page-placer.ts';
import type { PageIndex } from '../../src/protocol/layout.ts';
import { PageBitmap } from '../../src/protocol/page-bitmap.ts';
import { memoryLog } from '../protocol/log-sink.ts';

const PAGE = 4096;
const BASE = 0x10_0000;

function handler(): { faults: FaultHandler; requests: PageIndex[][]; woken: number[] } {
  const requests: PageIndex[][] = [];
  const woken: number[] = [];
  const received = new PageBitmap(64);
  received.set(9);
  const placer = { received, onPlaced: () => undefined } as unknown as PagePlacer;
  const uffd = { copy: () => ({ bytes: 0, existed: 0 }), zeropage: () => ({ bytes: 0, existed: 0 }), wake: (address: number) => woken.push(address), unregister: () => undefined };
  const faults = new FaultHandler({
    placer,
    uffd,
    regionAddress: BASE,
    pageSize: PAGE,
    request: (pages) => {
      requests.push([...pages]);
      return true;
    },
    log: memoryLog('warn').log,
  });
  return { faults, requests, woken };
}

const fault = (page: number, threadId: number, wp = false) => ({ type: 'pagefault' as const, address: BASE + page * PAGE + 123, write: true, wp, threadId });

describe('FaultHandler', () => {
  it("requests a wake-up's missing pages at once, in one request, each page once", () => {
    const { faults, requests, woken } = handler();
    faults.handleFaults([fault(3, 1), fault(3, 2), fault(5, 1), { type: 'remove' }, fault(7, 1, true), fault(9, 1)]);
    expect(requests).toEqual([[3, 5]]);
    // Page 9 was placed before its event was read: woken, not requested.
    expect(woken).toEqual([BASE + 9 * PAGE]);
    expect(faults.figures).toMatchObject({ faults: 4, dedupedFaults: 1, lateFaults: 1, requests: 1, requestedPages: 2 });
    expect(faults.outstanding).toBe(2);
    faults.handleFaults([fault(3, 3)]);
    expect(requests).toHaveLength(1);
  });

  it('sends a lone fault once the task is over, with the faults raised in the same task', async () => {
    const { faults, requests } = handler();
    faults.handleFault(fault(1, 1));
    faults.handleFault(fault(2, 1));
    expect(requests).toEqual([]);
    await Promise.resolve();
    expect(requests).toEqual([[1, 2]]);
  });
});

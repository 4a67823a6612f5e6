// A page thread's rehearsal runs the real fault path between two ends of a
// socket pair into a scratch userfaultfd region: the pages it places must be
// the pages it sent, and it must leave nothing open behind it, since every
// page thread of every source and destination runs it once.
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FaultThread } from '../../src/destination/fault-thread.ts';
import { REHEARSAL_ROUND_TRIPS, rehearseFaultPath } from '../../src/fault-path-rehearsal.ts';
import { RequestThread } from '../../src/source/request-thread.ts';
import { memoryLog } from '../protocol/log-sink.ts';
import { probePaths } from '../uffd/helpers.ts';

const [dev] = probePaths(['dev']);
if (dev.reason) console.log(`fault-path rehearsal test skipped: /dev/userfaultfd cannot be opened here (${dev.reason})`);

const openDescriptors = (): number => readdirSync('/proc/self/fd').length;

describe.skipIf(dev.reason !== null)('the fault-path rehearsal', () => {
  it('places every requested page as the source end sent it, data and zero pages alike', async () => {
    const { log, lines } = memoryLog('warn');
    // 100 round trips: one full pass over the scratch region, then a second, partial one after a discard.
    const result = await rehearseFaultPath(log, { roundTrips: 100 });
    expect(result).toMatchObject({ roundTrips: 100, verified: true });
    expect(lines()).toEqual([]);
  });

  it('stops at the round trip after it is interrupted, what it placed still checked', async () => {
    const { log } = memoryLog('warn');
    let asked = 0;
    const result = await rehearseFaultPath(log, { roundTrips: 1000, interrupted: () => ++asked > 20 });
    expect(result).toMatchObject({ roundTrips: 20, verified: true });
  });

  it('closes its sockets and its userfaultfd', async () => {
    const { log } = memoryLog('warn');
    await rehearseFaultPath(log, { roundTrips: 10 });
    const before = openDescriptors();
    for (let i = 0; i < 3; i++) await rehearseFaultPath(log, { roundTrips: 10 });
    expect(openDescriptors()).toBe(before);
  });

  it('runs whole in a page thread left to wait, which then says so', async () => {
    const { log, lines } = memoryLog('debug');
    const requests = new RequestThread(log);
    const faults = new FaultThread(log);
    try {
      await Promise.all([requests.rehearsed(), faults.rehearsed()]);
      const rehearsals = lines().filter((l) => l.msg === 'fault path rehearsed');
      expect(rehearsals.map((l) => [l.thread, l.roundTrips])).toEqual(
        expect.arrayContaining([
          ['requests', REHEARSAL_ROUND_TRIPS],
          ['page-thread', REHEARSAL_ROUND_TRIPS],
        ]),
      );
    } finally {
      await Promise.all([requests.stop(1000, 'test over'), faults.close()]);
    }
  });
});

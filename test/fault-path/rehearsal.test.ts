// A page thread's rehearsal runs the real fault path between two ends of a
// socket pair into a scratch userfaultfd region: the pages it places must be
// the pages it sent, and it must leave nothing open behind it, since every
// page thread of every source and destination runs it once.
import { readdirSync } from 'node:fs';
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { FaultThread } from '../../src/destination/fault-thread.ts';
import { REHEARSAL_ROUND_TRIPS, RehearsalStalledError, rehearseFaultPath, serveAfterRehearsal } from '../../src/fault-path-rehearsal.ts';
import { RequestThread } from '../../src/source/page-thread.ts';
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
    // Through /dev/userfaultfd the kernel raises each fault, for a thread writing the missing page out.
    expect(result).toMatchObject({ roundTrips: 100, verified: true, path: 'dev', faults: 'kernel' });
    expect(lines()).toEqual([]);
  });

  it('meets what a migration meets: many faults at once, pages placed by someone else, frames of pages already present', async () => {
    const { log } = memoryLog('warn');
    // Three passes, each ending in 50 laps: every lap finds one data page and one zero page placed (EEXIST);
    // every other lap sends the region as one full frame, the rest in short runs and then 34 pages again.
    const result = await rehearseFaultPath(log, { roundTrips: 128 });
    expect(result).toMatchObject({ roundTrips: 128, verified: true });
    expect(result!.existedPages).toBe(3 * 50 * 2);
    expect(result!.duplicatePages).toBe(3 * 25 * 34);
    // Each pass also faults on its 64 pages at once, and asks for them in one request.
    expect(result!.requestedPages - result!.requests).toBe(3 * 63);
  });

  it('stops at the round trip after it is interrupted, what it placed still checked', async () => {
    const { log } = memoryLog('warn');
    let asked = 0;
    const result = await rehearseFaultPath(log, { roundTrips: 1000, interrupted: () => ++asked > 20 });
    expect(result).toMatchObject({ roundTrips: 20, verified: true });
  });

  it('checks what the round trips placed when it is interrupted before its bulk laps', async () => {
    const { log } = memoryLog('warn');
    let asked = 0;
    // 64 round trips fill the scratch region; the next question comes before the first bulk lap.
    const result = await rehearseFaultPath(log, { roundTrips: 192, interrupted: () => ++asked > 64 });
    expect(result).toMatchObject({ roundTrips: 64, verified: true });
  });

  it('closes its sockets and its userfaultfd', async () => {
    const { log } = memoryLog('warn');
    await rehearseFaultPath(log, { roundTrips: 10 });
    const before = openDescriptors();
    for (let i = 0; i < 3; i++) await rehearseFaultPath(log, { roundTrips: 10 });
    expect(openDescriptors()).toBe(before);
  });

  it('abandons a round trip that never completes, naming it, and closes what it opened', async () => {
    const { log } = memoryLog('warn');
    await rehearseFaultPath(log, { roundTrips: 10 });
    const before = openDescriptors();
    const stalled = rehearseFaultPath(log, { roundTrips: 100, stallMs: 300, unanswered: new Set([7]) });
    await expect(stalled).rejects.toBeInstanceOf(RehearsalStalledError);
    await expect(stalled).rejects.toMatchObject({ code: 'REHEARSAL_STALLED', message: expect.stringContaining('round trip 7 did not complete within 300 ms') });
    expect(openDescriptors()).toBe(before);
  });

  it('still serves, after a warning, when its rehearsal stalls', async () => {
    const { log, lines } = memoryLog('warn');
    const { port1, port2 } = new MessageChannel();
    const handled: string[] = [];
    let rehearsed = false;
    try {
      const served = new Promise<void>((resolve) =>
        serveAfterRehearsal<string>(
          port1,
          log,
          (m) => {
            handled.push(m);
            resolve();
          },
          () => (rehearsed = true),
          { stallMs: 300, unanswered: new Set([0]) },
        ),
      );
      port2.postMessage('migrate');
      await served;
      expect(handled).toEqual(['migrate']);
      expect(rehearsed).toBe(true);
      expect(lines()).toEqual([
        expect.objectContaining({ msg: 'the fault-path rehearsal failed; the first faults will be slower', err: expect.objectContaining({ code: 'REHEARSAL_STALLED' }) }),
      ]);
    } finally {
      port1.close();
    }
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

  it('lets a page thread close at any moment of its rehearsal, and then closes it', async () => {
    // A third of the rehearsal's faults are a write(2) on libuv's pool asleep
    // on a scratch page: a thread terminated then never places that page,
    // and terminate() (or the process's exit) waited for the write forever.
    const { log } = memoryLog('warn');
    for (let i = 0; i < 6; i++) {
      const faults = new FaultThread(log);
      await faults.loaded();
      await new Promise((resolve) => setTimeout(resolve, 40 + 47 * i));
      let closed = false;
      await Promise.race([faults.close().then(() => (closed = true)), new Promise((resolve) => setTimeout(resolve, 10_000))]);
      expect(closed, `close() ${40 + 47 * i} ms into the rehearsal`).toBe(true);
    }
  });
});

// The fault path runs on its own threads at both ends: a vCPU's fault is read
// by the destination's fault thread, answered by the source's page-request
// thread and placed with UFFDIO_COPY while both main threads (here: the
// test's one) are blocked. The background push has the destination's bulk
// thread, which places through the same userfaultfd but never reads its
// faults. Needs /dev/userfaultfd.
import { readFileSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FaultThread } from '../../src/destination/fault-thread.ts';
import { generateSessionId, generateToken } from '../../src/protocol/auth.ts';
import { connectMigration } from '../../src/protocol/connect.ts';
import { MigrationListener, type ChannelSet, type IncomingMigration } from '../../src/protocol/listener.ts';
import { PageBitmap } from '../../src/protocol/page-bitmap.ts';
import { SharedMigrationState } from '../../src/protocol/shared-state.ts';
import { MigrationStateMachine } from '../../src/protocol/state.ts';
import { PageServer } from '../../src/source/page-server.ts';
import { PushThread, RequestThread } from '../../src/source/page-thread.ts';
import { KernelUserfaultfd } from '../../src/uffd/kernel.ts';
import { openUserfaultfd } from '../../src/uffd/open.ts';
import { allocateRegion, type GuestRegion } from '../../src/uffd/region.ts';
import { startWorker } from '../../src/worker.ts';
import { memoryLog } from '../protocol/log-sink.ts';
import { fillPage, PAGE } from '../transfer/pattern.ts';
import { probePaths } from '../uffd/helpers.ts';
import type { ReaderJob } from './page-reader.ts';

const PAGES = 64;
const [dev] = probePaths(['dev']);
if (dev.reason) console.log(`fault-thread test skipped: /dev/userfaultfd cannot be opened here (${dev.reason})`);

describe.skipIf(dev.reason !== null)('the fault path on its own threads', () => {
  const { log } = memoryLog('warn');
  let listener: MigrationListener;
  let source: ChannelSet;
  let destination: ChannelSet;
  let server: PageServer;
  let requests: RequestThread;
  let pushes: PushThread | undefined;
  let ramBuffer: SharedArrayBuffer;
  let sourceState: MigrationStateMachine;
  let faults: FaultThread;
  let uffd: KernelUserfaultfd;
  let region: GuestRegion;
  let received: PageBitmap;
  let destState: MigrationStateMachine;
  let bulk: FaultThread | undefined;
  const readers = new Set<Worker>();

  beforeEach(async () => {
    const token = generateToken();
    destState = new MigrationStateMachine();
    sourceState = new MigrationStateMachine();
    listener = await MigrationListener.listen({ token, pageSize: PAGE, state: destState, log });
    const incoming = new Promise<IncomingMigration>((resolve) => listener.onMigration(resolve));

    ramBuffer = new SharedArrayBuffer(PAGES * PAGE);
    for (let p = 0; p < PAGES; p++) fillPage(new Uint8Array(ramBuffer, p * PAGE, PAGE), p);
    server = new PageServer({ ram: new Uint8Array(ramBuffer), pageSize: PAGE, log });
    requests = new RequestThread(log);
    requests.serve({ ram: { kind: 'shared', buffer: ramBuffer }, share: server.share, state: sourceState });

    region = allocateRegion(PAGES * PAGE, 'kernel');
    uffd = openUserfaultfd({ path: 'dev', logger: log }) as KernelUserfaultfd;
    uffd.register(region.address, region.length);
    received = new PageBitmap(PAGES);
    faults = new FaultThread(log);
    destState.onChange((_from, to) => faults.setState(to));
    faults.serve({ uffd, regionAddress: region.address, regionLength: region.length, pageSize: PAGE, received, state: destState.state, sharedState: SharedMigrationState.mirror(destState).buffer });

    source = await connectMigration({
      url: `ws://127.0.0.1:${listener.port}`,
      token,
      session: generateSessionId(),
      identity: { pageSize: PAGE, ramBase: 0x8000_0000, ramSize: PAGES * PAGE, vcpus: 1, imageSha256: '0'.repeat(64) },
      state: sourceState,
      log,
    });
    requests.adopt(source.urgent);
    destination = (await incoming).channels;
    await faults.adopt(destination.urgent);
    await Promise.all([requests.loaded(), faults.loaded()]);
    for (const state of [sourceState, destState]) {
      state.moveTo('device');
      state.moveTo('postcopy-active');
    }
  });

  afterEach(async () => {
    await Promise.all([...readers].map((w) => w.terminate()));
    // Before the bulk thread: its close handshake needs the other end.
    await pushes?.stop(1000, 'test over');
    pushes = undefined;
    await bulk?.close();
    bulk = undefined;
    await requests.stop(1000, 'test over');
    await faults.close();
    for (const c of [source.control, source.bulk]) c.close();
    await listener.close();
    uffd.close();
    region.release();
  });

  function read(pages: number[]): Int32Array {
    const counts = new SharedArrayBuffer(8);
    const worker = startWorker(new URL('./page-reader.ts', import.meta.url), { handle: region.handle, pages, counts } satisfies ReaderJob);
    readers.add(worker);
    return new Int32Array(counts);
  }

  it('serves a vCPU’s faults while the main thread is blocked, with the right bytes, and counts them', async () => {
    const pages = [9, 3, 40, 41, 63];
    const tally = read(pages);
    // Blocked until every page was read (10 s cap): the main thread takes no part.
    while (Atomics.load(tally, 0) + Atomics.load(tally, 1) < pages.length) {
      const seen = Atomics.load(tally, 0);
      expect(Atomics.wait(tally, 0, seen, 10_000)).not.toBe('timed-out');
    }
    expect(Array.from(tally)).toEqual([pages.length, 0]);
    // UFFDIO_COPY wakes the reader before the placer marks the page received;
    // the fault thread answers only after the placement that woke it has finished.
    const f = await faults.figures();
    for (const p of pages) expect(received.has(p)).toBe(true);
    expect(received.count).toBe(pages.length);
    expect(f.faults.requestedPages).toBe(pages.length);
    expect(f.latencyUs.count).toBe(pages.length);
    expect(f.placer.zeroPages).toBe(1);
    expect(server.figures).toMatchObject({ postcopyRequests: pages.length, urgentPages: pages.length });
  });

  it('a bulk thread places the whole push off the main thread, says when every page is present, and leaves faults to the fault thread', async () => {
    bulk = new FaultThread(log, 'bulk');
    await bulk.loaded();
    expect(readFileSync(`/proc/self/task/${bulk.tid}/comm`, 'utf8').trim()).toBe('pc:bulk');
    expect(readFileSync(`/proc/self/task/${faults.tid}/comm`, 'utf8').trim()).toBe('pc:fault');
    bulk.serve({ role: 'bulk', uffd, regionAddress: region.address, regionLength: region.length, pageSize: PAGE, received, state: destState.state, sharedState: SharedMigrationState.mirror(destState).buffer });
    const allPresent = new Promise<void>((resolve) => bulk!.onAllPresent(resolve));
    await bulk.adopt(destination.bulk);
    // Both threads hold the userfaultfd; a fault is still the fault thread's to read and request.
    const faulted = [17, 2, 33, 50, 8, 61, 25, 44];
    const tally = read(faulted);
    while (Atomics.load(tally, 0) + Atomics.load(tally, 1) < faulted.length) {
      const seen = Atomics.load(tally, 0);
      expect(Atomics.wait(tally, 0, seen, 10_000)).not.toBe('timed-out');
    }
    expect(Array.from(tally)).toEqual([faulted.length, 0]);
    // The source's side as in a migration: its push thread pushes on bulk.
    pushes = new PushThread(log);
    pushes.serve({ ram: { kind: 'shared', buffer: ramBuffer }, share: server.share, state: sourceState, ramAddress: undefined, maxPostcopyBandwidth: undefined });
    pushes.adopt(source.bulk);
    pushes.push();
    await allPresent;
    expect(received.count).toBe(PAGES);
    const everything = Array.from({ length: PAGES }, (_, p) => p);
    const check = read(everything);
    while (Atomics.load(check, 0) + Atomics.load(check, 1) < PAGES) {
      const seen = Atomics.load(check, 0);
      expect(Atomics.wait(check, 0, seen, 10_000)).not.toBe('timed-out');
    }
    // page-reader checks every byte against fillPage: the push placed them right.
    expect(Array.from(check)).toEqual([PAGES, 0]);
    const [b, f] = await Promise.all([bulk.figures(), faults.figures()]);
    expect(f.faults.faults).toBe(faulted.length);
    expect(b.faults.faults).toBe(0);
    expect(f.placer.placedPages).toBe(faulted.length);
    expect(b.placer.placedPages).toBe(PAGES - faulted.length);
  });
});

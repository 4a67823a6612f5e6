// The software backend: the same Userfaultfd semantics over SharedArrayBuffer
// regions, for hosts without a kernel userfaultfd. vCPUs post faults to a
// shared ring (sim-gate.ts); this side waits for them with Atomics.waitAsync,
// so the main thread sleeps in its event loop instead of spinning.
import type { Logger } from '../log.ts';
import { UffdBusyError, UffdClosedError, UffdRangeError, UffdUnsupportedError } from './errors.ts';
import { EventQueue } from './event-queue.ts';
import { PAGE_SIZE, checkRange, hasBit, hex, setBit } from './pages.ts';
import { RangeSet } from './range-set.ts';
import { SimRegion, regionContaining, type GuestRegion, type SimRegionHandle } from './region.ts';
import {
  ABORTED,
  ENTRY_WORDS,
  FLAG_WRITE,
  LIVE,
  NOTIFY,
  OWNER,
  READ_SEQ,
  RING_CAPACITY,
  STATE,
  simViews,
  type SimViews,
} from './sim-layout.ts';
import type {
  PagefaultEvent,
  PlaceOptions,
  PlaceResult,
  RegisterOptions,
  Registration,
  UffdFeatures,
  Userfaultfd,
} from './userfaultfd.ts';

const SIM_FEATURES: UffdFeatures = {
  threadId: true,
  writeProtect: false,
  remove: false,
  unmap: false,
  bits: 0,
  available: 0,
};

/** One sim region this userfaultfd serves: its shared words, and the ring watcher. */
interface Served {
  readonly region: GuestRegion;
  readonly handle: SimRegionHandle;
  readonly views: SimViews;
  readonly present: Int32Array;
  readonly status: Int32Array;
  readonly bytes: Uint8Array;
  active: boolean;
}

// Atomics.waitAsync is in Node >= 16 but only in TypeScript's es2024 lib.
type WaitAsync = (
  array: Int32Array,
  index: number,
  value: number,
) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

// Owner ids are process-wide so two sim userfaultfds never share a region.
let nextOwnerId = 1;

export class SimUserfaultfd extends EventQueue implements Userfaultfd {
  readonly path = 'sim' as const;
  readonly backend = 'sim' as const;
  readonly features = SIM_FEATURES;
  /** No kernel is involved: a device model must call gate.ensure() before a syscall on guest RAM. */
  readonly handlesKernelFaults = false;
  private readonly ownerId = nextOwnerId++;
  private readonly served = new Map<GuestRegion, Served>();
  private readonly registered = new RangeSet();
  private isClosed = false;

  constructor(private readonly log: Logger) {
    super();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  private checkOpen(doing: string): void {
    if (this.isClosed) throw new UffdClosedError(`${doing}: the userfaultfd is closed`);
  }

  private registeredAt(address: number, length: number): Served | undefined {
    const region = regionContaining(address, length);
    const served = region && this.served.get(region);
    return served && this.registered.covers(address, length) ? served : undefined;
  }

  private find(address: number, length: number, doing: string): Served {
    const served = this.registeredAt(address, length);
    if (!served) {
      throw new UffdRangeError(`${doing}: [${hex(address)}, +${length}) is not registered with this userfaultfd`, {
        errno: 'ENOENT',
      });
    }
    return served;
  }

  register(address: number, length: number, options: RegisterOptions = {}): Registration {
    this.checkOpen('register');
    checkRange(address, length, 'register');
    if (options.writeProtect) throw new UffdUnsupportedError('register: the sim backend has no write-protect faults');
    const region = regionContaining(address, length);
    if (!(region instanceof SimRegion) || region.released) {
      throw new UffdRangeError(`register: no sim region holds [${hex(address)}, +${length})`, { errno: 'EINVAL' });
    }
    const handle = region.handle;
    const views = simViews(handle.control, handle.length / PAGE_SIZE);
    const owner = Atomics.compareExchange(views.header, OWNER, 0, this.ownerId);
    if (owner !== 0 && owner !== this.ownerId) {
      throw new UffdBusyError(`register: [${hex(address)}, +${length}) is registered with another userfaultfd`, {
        errno: 'EBUSY',
      });
    }
    let served = this.served.get(region);
    if (!served) {
      served = {
        region,
        handle,
        views,
        present: new Int32Array(handle.present),
        status: new Int32Array(handle.status),
        bytes: new Uint8Array(handle.buffer),
        active: true,
      };
      this.served.set(region, served);
      this.watch(served);
    }
    Atomics.store(served.status, STATE, LIVE);
    const first = (address - region.address) / PAGE_SIZE;
    region.adoptMainThreadWrites(first, length / PAGE_SIZE);
    for (let p = first; p < first + length / PAGE_SIZE; p++) setBit(views.registered, p);
    this.registered.add(address, length);
    return { address, length, ioctls: ['copy', 'zeropage', 'wake'] };
  }

  unregister(address: number, length: number): void {
    this.checkOpen('unregister');
    checkRange(address, length, 'unregister');
    const served = this.find(address, length, 'unregister');
    const first = (address - served.region.address) / PAGE_SIZE;
    for (let p = first; p < first + length / PAGE_SIZE; p++) {
      Atomics.and(served.views.registered, p >>> 5, ~(1 << (p & 31)));
    }
    this.registered.remove(address, length);
    // As the kernel does: sleepers retry, now on unregistered memory.
    this.wakePages(served, first, length / PAGE_SIZE);
  }

  copy(address: number, source: Uint8Array, options: PlaceOptions = {}): PlaceResult {
    this.checkOpen('copy');
    checkRange(address, source.length, 'copy');
    if (options.writeProtect) throw new UffdUnsupportedError('copy: the sim backend has no write-protect mode');
    return this.place(address, source.length, options, (served, offset, at, bytes) =>
      served.bytes.set(source.subarray(at, at + bytes), offset),
    );
  }

  zeropage(address: number, length: number, options: PlaceOptions = {}): PlaceResult {
    this.checkOpen('zeropage');
    checkRange(address, length, 'zeropage');
    return this.place(address, length, options, (served, offset, _at, bytes) =>
      served.bytes.fill(0, offset, offset + bytes),
    );
  }

  // Fills each missing page and sets its present bit after its bytes (the
  // Atomics.or publishes them to a vCPU that tests the bit with Atomics.load).
  // Present pages are left alone and counted as existed, like EEXIST.
  private place(
    address: number,
    length: number,
    options: PlaceOptions,
    fill: (served: Served, regionOffset: number, sourceOffset: number, bytes: number) => void,
  ): PlaceResult {
    const served = this.find(address, length, 'place');
    const first = (address - served.region.address) / PAGE_SIZE;
    const pages = length / PAGE_SIZE;
    let existed = 0;
    for (let i = 0; i < pages; i++) {
      const page = first + i;
      if (hasBit(served.present, page)) {
        existed += PAGE_SIZE;
        continue;
      }
      fill(served, page * PAGE_SIZE, i * PAGE_SIZE, PAGE_SIZE);
      setBit(served.present, page);
    }
    if (options.wake !== false) this.wakePages(served, first, pages);
    return { bytes: length - existed, existed };
  }

  wake(address: number, length: number): void {
    this.checkOpen('wake');
    checkRange(address, length, 'wake');
    // As UFFDIO_WAKE: no range check against registrations. A range no longer
    // registered has no sleepers (unregistering woke them), and a fault event
    // read after the unregister may still ask for a wake.
    const served = this.registeredAt(address, length);
    if (!served) return;
    this.wakePages(served, (address - served.region.address) / PAGE_SIZE, length / PAGE_SIZE);
  }

  writeProtect(): void {
    throw new UffdUnsupportedError('writeProtect: the sim backend has no write-protect mode');
  }

  // Only words with a sleeper are touched, so waking a 1 GiB range is cheap.
  private wakePages(served: Served, first: number, pages: number): void {
    const { sleepers, wake } = served.views;
    const end = first + pages;
    for (let word = first >>> 5; word <= (end - 1) >>> 5; word++) {
      if (Atomics.load(sleepers, word) === 0) continue;
      for (let p = Math.max(first, word * 32); p < Math.min(end, word * 32 + 32); p++) {
        Atomics.add(wake, p, 1);
        Atomics.notify(wake, p);
      }
    }
  }

  // Reads the NOTIFY count before draining, then waits for it to move: a
  // fault published after the drain bumps NOTIFY and ends the wait at once.
  private watch(served: Served): void {
    const { header } = served.views;
    const loop = (): void => {
      if (!served.active) return;
      const seen = Atomics.load(header, NOTIFY);
      this.deliver(this.drainRing(served));
      const waited = waitAsync(header, NOTIFY, seen);
      if (waited.async) void waited.value.then(loop);
      else queueMicrotask(loop);
    };
    loop();
  }

  private drainRing(served: Served): PagefaultEvent[] {
    const { header, ring } = served.views;
    const events: PagefaultEvent[] = [];
    let read = Atomics.load(header, READ_SEQ);
    for (;;) {
      const at = (read & (RING_CAPACITY - 1)) * ENTRY_WORDS;
      if (Atomics.load(ring, at + 3) !== ((read + 1) | 0)) break;
      events.push({
        type: 'pagefault',
        address: served.region.address + ring[at] * PAGE_SIZE,
        write: (ring[at + 1] & FLAG_WRITE) !== 0,
        wp: false,
        threadId: ring[at + 2],
      });
      read = (read + 1) | 0;
    }
    if (events.length > 0) {
      Atomics.store(header, READ_SEQ, read);
      Atomics.notify(header, READ_SEQ);
    }
    return events;
  }

  unref(): void {}

  ref(): void {}

  // Marks a region aborted when registered pages are still missing, then
  // wakes every sleeper: each sees the status and throws UFFD_ERR_CLOSED.
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const served of this.served.values()) {
      const pages = served.handle.length / PAGE_SIZE;
      let missing = false;
      for (let p = 0; p < pages; p++) {
        if (hasBit(served.views.registered, p) && !hasBit(served.present, p)) missing = true;
        Atomics.and(served.views.registered, p >>> 5, ~(1 << (p & 31)));
      }
      if (missing) {
        Atomics.store(served.status, STATE, ABORTED);
        this.log.warn({ address: hex(served.region.address) }, 'userfaultfd closed with pages missing');
      }
      Atomics.store(served.views.header, OWNER, 0);
      served.active = false;
      Atomics.add(served.views.header, NOTIFY, 1);
      Atomics.notify(served.views.header, NOTIFY);
      this.wakePages(served, 0, pages);
    }
    this.served.clear();
    this.registered.clear();
  }
}


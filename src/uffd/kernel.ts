// The kernel backend: a real userfaultfd (from /dev/userfaultfd or
// userfaultfd(2)) watched on the libuv loop. Placement policy lives here:
// EEXIST = another placement won (skip the page, wake it), EAGAIN = the
// mappings are changing (drain events, retry), partial copy = continue.
import { constants as os } from 'node:os';
import type { Logger } from '../log.ts';
import { loadNative, type NativeAddon, type PollHandle } from './native.ts';
import { UffdClosedError, UffdUnsupportedError, errnoError, fromNative } from './errors.ts';
import { EventQueue } from './event-queue.ts';
import { decodeMessages } from './messages.ts';
import { PAGE_SIZE, checkRange, hex } from './pages.ts';
import { RangeSet } from './range-set.ts';
import { regionContaining } from './region.ts';
import { ABORTED, LIVE, STATE } from './sim-layout.ts';
import type {
  AccessPath,
  PlaceOptions,
  PlaceResult,
  RegisterOptions,
  Registration,
  UffdFeatures,
  Userfaultfd,
} from './userfaultfd.ts';

const BATCH = 64;
// Bounded so a caller never spins forever on a mapping change it caused itself.
const MAX_EAGAIN_RETRIES = 10_000;

// A worker asleep on a fault blocks process exit (Node joins its threads)
// until the fault is resolved, so every fd still open is closed on 'exit'.
const open = new Set<KernelUserfaultfd>();
let exitHookInstalled = false;

function closeAllOnExit(uffd: KernelUserfaultfd): void {
  open.add(uffd);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const u of open) u.close();
  });
}

const errnoNames = new Map<number, string>(Object.entries(os.errno).map(([name, n]) => [n, name]));

function ioctlNames(mask: bigint, native: NativeAddon): string[] {
  const c = native.constants;
  const names: [string, number][] = [
    ['register', c._UFFDIO_REGISTER],
    ['unregister', c._UFFDIO_UNREGISTER],
    ['wake', c._UFFDIO_WAKE],
    ['copy', c._UFFDIO_COPY],
    ['zeropage', c._UFFDIO_ZEROPAGE],
    ['writeprotect', c._UFFDIO_WRITEPROTECT],
    ['continue', c._UFFDIO_CONTINUE],
    ['api', c._UFFDIO_API],
  ];
  return names.filter(([, bit]) => (mask >> BigInt(bit)) & 1n).map(([name]) => name);
}

export class KernelUserfaultfd extends EventQueue implements Userfaultfd {
  readonly backend = 'kernel' as const;
  readonly handlesKernelFaults: boolean;
  private readonly native = loadNative();
  private readonly messages = new ArrayBuffer(BATCH * 32);
  private readonly view = new DataView(this.messages);
  private readonly registered = new RangeSet();
  private readonly poll: PollHandle | undefined;
  private watching: boolean;
  private fd: number;
  /**
   * features.threadId, read on every wake-up. Not through `features`: a
   * fault thread's comes through postMessage, a structured clone whose shape
   * is not the literal's its rehearsal read, and V8 threw away the whole
   * compiled fault path at a migration's first fault (a wrong-map deopt in
   * readPending), then spent tens of milliseconds of the helper threads'
   * time in postcopy compiling it again.
   */
  private readonly threadIds: boolean;

  constructor(
    fd: number,
    readonly path: AccessPath,
    readonly features: UffdFeatures,
    private readonly log: Logger,
    /** watch: false leaves reading events to the owner's own poll(2) loop (`descriptor`, `readPending`). */
    options: { watch?: boolean } = {},
  ) {
    super();
    this.fd = fd;
    this.threadIds = features.threadId;
    this.handlesKernelFaults = path !== 'syscall-user-mode-only';
    this.watching = options.watch !== false;
    if (this.watching) this.poll = this.native.pollStart(fd, this.messages, (count, errno) => this.onMessages(count, errno));
    closeAllOnExit(this);
  }

  get closed(): boolean {
    return this.fd < 0;
  }

  private onMessages(count: number, errno: string | null): void {
    if (errno) {
      this.emit('error', errnoError(errno, `reading the userfaultfd failed`, { syscall: 'read' }));
      return;
    }
    this.deliver(decodeMessages(this.view, count, this.native.constants, this.threadIds));
  }

  /** The userfaultfd itself, for a thread that polls it (watch: false). */
  get descriptor(): number {
    return this.liveFd('descriptor');
  }

  /** Reads and delivers the events queued now, without waiting (watch: false). */
  readPending(): void {
    let count: number;
    try {
      count = this.native.read(this.liveFd('readPending'), this.messages);
    } catch (err) {
      this.emit('error', fromNative(err, 'reading the userfaultfd failed'));
      return;
    }
    if (count > 0) this.deliver(decodeMessages(this.view, count, this.native.constants, this.threadIds));
  }

  /**
   * Another thread reads the fault events from now on (a fault thread, as in
   * QEMU): stop watching the fd here and return a duplicate of it for that
   * thread's own KernelUserfaultfd. This one keeps placing pages. The
   * userfaultfd ends only once both descriptors are closed.
   */
  handOverEvents(): number {
    const fd = this.liveFd('handOverEvents');
    if (this.watching) {
      this.watching = false;
      this.native.pollStop(this.poll!);
    }
    return this.native.dup(fd);
  }

  private liveFd(doing: string): number {
    if (this.fd < 0) throw new UffdClosedError(`${doing}: the userfaultfd is closed`);
    return this.fd;
  }

  register(address: number, length: number, options: RegisterOptions = {}): Registration {
    const fd = this.liveFd('register');
    checkRange(address, length, 'register');
    const c = this.native.constants;
    let mode = options.missing === false ? 0 : c.UFFDIO_REGISTER_MODE_MISSING;
    if (options.writeProtect) {
      if (!this.features.writeProtect) {
        throw new UffdUnsupportedError('register: this userfaultfd does not offer write-protect faults');
      }
      mode |= c.UFFDIO_REGISTER_MODE_WP;
    }
    let ioctls: bigint;
    try {
      ioctls = this.native.register(fd, address, length, mode);
    } catch (err) {
      throw fromNative(err, `register [${hex(address)}, +${length})`);
    }
    this.registered.add(address, length);
    const region = regionContaining(address, length);
    if (region) Atomics.store(new Int32Array(region.handle.status), STATE, LIVE);
    return { address, length, ioctls: ioctlNames(ioctls, this.native) };
  }

  unregister(address: number, length: number): void {
    const fd = this.liveFd('unregister');
    checkRange(address, length, 'unregister');
    try {
      this.native.unregister(fd, address, length);
    } catch (err) {
      throw fromNative(err, `unregister [${hex(address)}, +${length})`);
    }
    this.registered.remove(address, length);
  }

  copy(address: number, source: Uint8Array, options: PlaceOptions = {}): PlaceResult {
    const fd = this.liveFd('copy');
    checkRange(address, source.length, 'copy');
    const c = this.native.constants;
    let mode = options.wake === false ? c.UFFDIO_COPY_MODE_DONTWAKE : 0;
    if (options.writeProtect) mode |= c.UFFDIO_COPY_MODE_WP;
    // Fast path: the whole range placed by one ioctl.
    const placed = this.native.copy(fd, address, source, mode);
    if (placed === source.length) return { bytes: placed, existed: 0 };
    return this.finishPlacement(address, source.length, placed, options, 'copy', (at, done) =>
      this.native.copy(fd, at, source.subarray(done), mode),
    );
  }

  zeropage(address: number, length: number, options: PlaceOptions = {}): PlaceResult {
    const fd = this.liveFd('zeropage');
    checkRange(address, length, 'zeropage');
    const mode = options.wake === false ? this.native.constants.UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0;
    const placed = this.native.zeropage(fd, address, length, mode);
    if (placed === length) return { bytes: placed, existed: 0 };
    return this.finishPlacement(address, length, placed, options, 'zeropage', (at, done) =>
      this.native.zeropage(fd, at, length - done, mode),
    );
  }

  private finishPlacement(
    address: number,
    length: number,
    first: number,
    options: PlaceOptions,
    doing: string,
    again: (at: number, done: number) => number,
  ): PlaceResult {
    let done = 0;
    let existed = 0;
    let retries = 0;
    let result = first;
    for (;;) {
      if (result > 0) {
        done += result;
      } else {
        const errno = errnoNames.get(-result) ?? `E${-result}`;
        if (errno === 'EEXIST') {
          existed += PAGE_SIZE;
          done += PAGE_SIZE;
        } else if (errno === 'EAGAIN' && retries++ < MAX_EAGAIN_RETRIES) {
          this.drainNow();
        } else {
          throw errnoError(errno, `${doing} [${hex(address + done)}, +${length - done})`, {
            syscall: `ioctl(UFFDIO_${doing.toUpperCase()})`,
          });
        }
      }
      if (done >= length) break;
      result = again(address + done, done);
    }
    // A thread may sleep on a page someone else placed with DONTWAKE.
    if (existed > 0 && options.wake !== false) this.wake(address, length);
    return { bytes: done - existed, existed };
  }

  // EAGAIN means a non-cooperative event (remove/unmap) must be read before the
  // mappings settle. Read it now; hand it to listeners after this call returns.
  private drainNow(): void {
    const count = this.native.read(this.fd, this.messages);
    const events = decodeMessages(this.view, count, this.native.constants, this.threadIds);
    if (events.length > 0) queueMicrotask(() => this.deliver(events));
  }

  wake(address: number, length: number): void {
    const fd = this.liveFd('wake');
    checkRange(address, length, 'wake');
    try {
      this.native.wake(fd, address, length);
    } catch (err) {
      throw fromNative(err, `wake [${hex(address)}, +${length})`);
    }
  }

  writeProtect(address: number, length: number, protect: boolean, options: { wake?: boolean } = {}): void {
    const fd = this.liveFd('writeProtect');
    checkRange(address, length, 'writeProtect');
    const c = this.native.constants;
    let mode = protect ? c.UFFDIO_WRITEPROTECT_MODE_WP : 0;
    if (options.wake === false) mode |= c.UFFDIO_WRITEPROTECT_MODE_DONTWAKE;
    try {
      this.native.writeProtect(fd, address, length, mode);
    } catch (err) {
      throw fromNative(err, `writeProtect [${hex(address)}, +${length})`);
    }
  }

  unref(): void {
    if (this.watching && !this.closed) this.native.pollRef(this.poll!, false);
  }

  ref(): void {
    if (this.watching && !this.closed) this.native.pollRef(this.poll!, true);
  }

  // Regions with pages still missing are marked aborted *before* the fd is
  // closed: the kernel wakes their sleeping threads, which then read zeros,
  // and the status word is how a vCPU tells zeros from data.
  close(): void {
    if (this.fd < 0) return;
    for (const range of this.registered.ranges()) {
      const region = regionContaining(range.address, range.length);
      if (region && !region.released && this.anyMissing(range.address, range.length)) {
        Atomics.store(new Int32Array(region.handle.status), STATE, ABORTED);
        this.log.warn({ address: hex(range.address), length: range.length }, 'userfaultfd closed with pages missing');
      }
    }
    this.registered.clear();
    open.delete(this);
    if (this.watching) this.native.pollStop(this.poll!);
    this.watching = false;
    const fd = this.fd;
    this.fd = -1;
    this.native.close(fd);
  }

  private anyMissing(address: number, length: number): boolean {
    return this.native.mincore(address, length).some((resident) => (resident & 1) === 0);
  }
}

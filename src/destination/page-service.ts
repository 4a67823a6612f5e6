// What a destination page thread does once it has a userfaultfd and RAM to
// place into: the fault thread turns fault events into urgent requests and
// places the answers, the bulk thread places precopy pages and the
// background push. The thread's rehearsal (fault-path-rehearsal.ts) builds
// one of these over its scratch region too. V8 optimizes a closure per place
// in the source that makes it, so the migration's closures must be made where
// the rehearsal's were: rehearsed through closures of its own, the fault path
// was compiled again, deoptimized, on the helper threads in the first half of
// postcopy.
import type { Logger } from '../log.ts';
import { adoptChannel, type ChannelHandoff, type StateSource } from '../protocol/channel-handoff.ts';
import type { MigrationChannel } from '../protocol/channel.ts';
import type { ProtocolError } from '../protocol/errors.ts';
import type { PageBitmap } from '../protocol/page-bitmap.ts';
import { MIGRATION_STATES, type MigrationState } from '../protocol/state.ts';
import type { PollLoop, PollSource } from '../poll-loop.ts';
import type { KernelUserfaultfd } from '../uffd/kernel.ts';
import { loadNative } from '../uffd/native.ts';
import { FaultHandler } from './fault-handler.ts';
import type { PageThreadRole } from './fault-thread-messages.ts';
import { PagePlacer } from './page-placer.ts';
import type { PlacementRegion } from './uffd-port.ts';

export interface PageServiceOptions {
  readonly role: PageThreadRole;
  /** This thread's own descriptor, not watched by libuv: the poll loop reads its events. */
  readonly uffd: KernelUserfaultfd;
  readonly region: PlacementRegion;
  readonly pageSize: number;
  readonly received: PageBitmap;
  /** What each frame is checked against: never behind what the source has seen. */
  readonly states: StateSource;
  /** Where this thread's requests start; moves arrive by setState(). */
  readonly state: MigrationState;
  readonly loop: PollLoop;
  readonly log: Logger;
  /** The last missing page was placed here. */
  readonly onAllPresent: () => void;
  /** Answers awaitPrecopy(): at least `pages` precopy pages are in RAM. */
  readonly onPrecopyPlaced: (pages: number) => void;
  /** An adopted channel closed, with `error` when this side closed it for a protocol error. */
  readonly onChannelClosed: (id: number, code: number, reason: string, error?: ProtocolError) => void;
  /** The fault thread can no longer read the userfaultfd. */
  readonly onFailure: (message: string) => void;
}

/**
 * Guest RAM as a page thread sees it. Missing pages are placed only through
 * the userfaultfd; write() and zero() are for the one direct write PagePlacer
 * makes, a precopy page overwriting one the bulk thread placed in an earlier
 * round, and go through the addon rather than a view (see writeMemory in
 * memory.c). One literal for the migration and the rehearsal alike, so both
 * place through objects of one shape.
 */
export function pageThreadRegion(address: number, length: number): PlacementRegion {
  const native = loadNative();
  const at = (offset: number, bytes: number): number => {
    if (offset < 0 || offset + bytes > length) throw new RangeError(`[${offset}, ${offset + bytes}) is outside guest RAM (${length} bytes)`);
    return address + offset;
  };
  return {
    address,
    length,
    write: (offset, src) => native.writeMemory(at(offset, src.length), src),
    zero: (offset, bytes) => native.zeroMemory(at(offset, bytes), bytes),
    discard: () => {
      throw new Error('discards are applied by the main thread');
    },
  };
}

// What came through postMessage is a copy, not the interned literal the
// rehearsal compared against, and V8 threw away code that compared them.
const internedState = (state: MigrationState): MigrationState => MIGRATION_STATES.find((s) => s === state)!;

export class PageService {
  readonly placer: PagePlacer;
  readonly faults: FaultHandler;
  /** The channel this thread serves: urgent for 'faults', bulk for 'bulk'. */
  private served: MigrationChannel | undefined;
  private state: MigrationState;
  private faultSource: PollSource | undefined;
  /** The largest page count a precopy-sync awaits, until the placer reaches it. */
  private precopyTarget = 0;

  constructor(private readonly options: PageServiceOptions) {
    const { uffd, region, pageSize, received, log } = options;
    const role: PageThreadRole = options.role === 'bulk' ? 'bulk' : 'faults';
    this.state = internedState(options.state);
    this.placer = new PagePlacer({ uffd, region, pageSize, log, received });
    this.faults = new FaultHandler({
      placer: this.placer,
      uffd,
      regionAddress: region.address,
      pageSize,
      log,
      request: (pages) => {
        // Before the guest runs here, and while paused, requests wait: entering postcopy-active sends them all.
        // A bulk thread is never given faults, and its channel carries no requests.
        if (role !== 'faults' || this.state !== 'postcopy-active' || !this.served?.open) return false;
        this.served.send({ type: 'page-request', pages });
        options.loop.awaitAnswer();
        return true;
      },
    });
    if (role === 'faults') this.readFaults();
  }

  adopt(id: number, handoff: ChannelHandoff): void {
    const { states, log, loop, received, onAllPresent, onChannelClosed } = this.options;
    const channel = adoptChannel(handoff, states, log, loop);
    this.served = channel;
    channel.onMessage((m) => {
      if (m.type !== 'pages' && m.type !== 'zero-run') return;
      const wasFull = received.full;
      this.placer.place(m);
      loop.awaitNextEvent();
      if (!wasFull && received.full) onAllPresent();
      if (m.precopy && this.precopyTarget > 0) this.answerPrecopy();
    });
    channel.onClose((code, reason, error) => {
      if (this.served === channel) this.served = undefined;
      onChannelClosed(id, code, reason, error);
    });
  }

  /** Calls onPrecopyPlaced once this many precopy pages are in RAM (at once if they are). */
  awaitPrecopy(pages: number): void {
    this.precopyTarget = Math.max(this.precopyTarget, pages);
    this.answerPrecopy();
  }

  private answerPrecopy(): void {
    const placed = this.placer.figures.precopyPages;
    if (placed < this.precopyTarget) return;
    this.precopyTarget = 0;
    this.options.onPrecopyPlaced(placed);
  }

  closeChannel(code: number, reason: string): void {
    this.served?.close(code, reason);
  }

  setState(next: MigrationState): void {
    const before = this.state;
    this.state = internedState(next);
    if (this.state === 'postcopy-active' && before !== 'postcopy-active') this.faults.resendOutstanding();
  }

  // The fault thread's own work: every missing-page fault becomes a request, in the wake-up that read it.
  private readFaults(): void {
    const { uffd, loop, onFailure } = this.options;
    uffd.on('events', (batch) => this.faults.handleFaults(batch));
    const source: PollSource = { fd: uffd.descriptor, pollEvents: loadNative().constants.POLLIN, ready: () => uffd.readPending() };
    this.faultSource = source;
    uffd.on('error', (err: Error) => {
      this.stopReadingFaults();
      onFailure(`the fault thread cannot read the userfaultfd: ${err.message}`);
    });
    loop.add(source);
  }

  /** Stops reading the userfaultfd: a rehearsal's, before it is closed, must not stay in the poll set. */
  stopReadingFaults(): void {
    if (this.faultSource) this.options.loop.remove(this.faultSource);
    this.faultSource = undefined;
  }
}

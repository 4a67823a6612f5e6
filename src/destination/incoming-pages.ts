// The destination's page engine wired to its three channels: urgent pages
// are placed the moment they arrive, precopy and pushed pages through the
// bounded bulk intake, discards as control brings them; precopy-sync is
// answered once the precopy pages it counts are in RAM; faults become
// requests; when every page is present it unregisters the range, tells the
// source (`complete`) and moves the migration to completed.
//
// With page threads (the kernel backend), faults, requests and urgent pages
// are the fault thread's and the bulk channel is the bulk thread's: this one
// hands them their channels, applies discards to the same received-pages
// bitmap and relays precopy-sync.
import type { Logger } from '../log.ts';
import type { ChannelSet } from '../protocol/listener.ts';
import type { ChannelKind, ControlMessage, Message, Recover } from '../protocol/messages.ts';
import type { MigrationStateMachine } from '../protocol/state.ts';
import type { PageBitmap } from '../protocol/page-bitmap.ts';
import { BulkIntake } from './bulk-intake.ts';
import { CountWaiters } from './count-waiters.ts';
import { FaultHandler } from './fault-handler.ts';
import type { ChannelCloseHandler, FaultThread } from './fault-thread.ts';
import { PagePlacer } from './page-placer.ts';
import type { FaultEvent, FaultSource, PlacementRegion, PlacementUffd } from './uffd-port.ts';

export interface IncomingPagesOptions {
  readonly uffd: PlacementUffd;
  readonly region: PlacementRegion;
  readonly pageSize: number;
  readonly state: MigrationStateMachine;
  readonly log: Logger;
  /** Bulk frames queued before the bulk socket is paused (default 16). */
  readonly bulkQueueFrames?: number;
  /**
   * The kernel backend's page threads: `faults` serves faults and urgent
   * pages, `bulk` places the bulk channel's; both share `received` with the
   * placer here. Without them this thread does all of it.
   */
  readonly pageThreads?: { readonly faults: FaultThread; readonly bulk: FaultThread };
  readonly received?: PageBitmap;
}

export class IncomingPages {
  readonly placer: PagePlacer;
  readonly faults: FaultHandler;
  private channels: ChannelSet | undefined;
  private intake: BulkIntake | undefined;
  private completeHandler: (() => void) | undefined;
  /** Without page threads: precopy-syncs waiting for this thread's placer to take their pages. */
  private readonly precopyWaiters = new CountWaiters();

  constructor(private readonly options: IncomingPagesOptions) {
    this.placer = new PagePlacer(options);
    options.pageThreads?.faults.onAllPresent(() => this.checkComplete());
    options.pageThreads?.bulk.onAllPresent(() => this.checkComplete());
    this.faults = new FaultHandler({
      placer: this.placer,
      uffd: options.uffd,
      regionAddress: options.region.address,
      pageSize: options.pageSize,
      log: options.log,
      request: (pages) => {
        const urgent = this.channels?.urgent;
        if (!urgent?.open) return false;
        urgent.send({ type: 'page-request', pages });
        return true;
      },
    });
  }

  get bulkQueued(): number {
    return this.intake?.queued ?? 0;
  }

  /** The bulk intake's high-water marks so far: frames and page bytes. */
  get bulkHighestQueued(): { frames: number; bytes: number } {
    return { frames: this.intake?.highestQueued ?? 0, bytes: this.intake?.highestQueuedBytes ?? 0 };
  }

  /**
   * Channels of a (re)established connection; control messages other than
   * pages and discards go to `onControl`, and the close of a channel a page
   * thread holds to `onThreadChannelClose`. Resolves once the page threads
   * hold their channels.
   */
  async attach(channels: ChannelSet, onControl: (m: ControlMessage) => void, onThreadChannelClose?: (kind: ChannelKind, ...closed: Parameters<ChannelCloseHandler>) => void): Promise<void> {
    this.channels = channels;
    channels.control.onMessage((m) => this.control(m, onControl));
    const threads = this.options.pageThreads;
    if (threads) {
      const closed = (kind: ChannelKind): ChannelCloseHandler => (code, reason, error) => onThreadChannelClose?.(kind, code, reason, error);
      await Promise.all([threads.faults.adopt(channels.urgent, closed('urgent')), threads.bulk.adopt(channels.bulk, closed('bulk'))]);
      return;
    }
    this.intake = new BulkIntake(channels.bulk, (frame) => this.place(frame), this.options.bulkQueueFrames ?? 16);
    const intake = this.intake;
    channels.bulk.onMessage((m) => {
      if (m.type === 'pages' || m.type === 'zero-run') intake.push(m);
    });
    channels.urgent.onMessage((m) => {
      if (m.type === 'pages' || m.type === 'zero-run') this.place(m);
    });
  }

  /** The connection broke: forget the channels, keep every page and every waiting fault. */
  detach(): void {
    this.intake?.clear();
    this.intake = undefined;
    this.channels = undefined;
  }

  /**
   * Feeds missing-page faults from the userfaultfd into the fault handler (or
   * the fault thread, for the few this thread reads while retrying a
   * placement); returns the unsubscribe.
   */
  watch(source: FaultSource): () => void {
    const thread = this.options.pageThreads?.faults;
    const listener = (batch: readonly { readonly type: string }[]): void => {
      for (const e of batch) {
        if (e.type !== 'pagefault' || (e as FaultEvent).wp) continue;
        if (thread) thread.forward(e as FaultEvent);
        else this.faults.handleFault(e as FaultEvent);
      }
    };
    source.on('events', listener);
    return () => source.off('events', listener);
  }

  /** What to send the source after a reconnect: the pages already here. */
  recoverMessage(): Recover {
    return { type: 'recover', received: this.placer.received.encode() };
  }

  /** The source applied our bitmap: ask again for what the vCPUs still wait on (a fault thread does on its own). */
  resumed(): void {
    if (!this.options.pageThreads) this.faults.resendOutstanding();
    this.checkComplete();
  }

  /** The guest runs (postcopy-active): completion may now be declared. */
  postcopyStarted(): void {
    this.checkComplete();
  }

  onComplete(handler: () => void): void {
    this.completeHandler = handler;
  }

  private control(m: Message, onControl: (m: ControlMessage) => void): void {
    // The codec refuses page frames on control; this only narrows the type.
    if (m.type === 'pages' || m.type === 'zero-run') return;
    if (m.type === 'precopy-sync') {
      const control = this.channels?.control;
      void this.precopyPlaced(m.pages).then(() => {
        if (control?.open) control.send({ type: 'ack', of: 'precopy-sync' });
      });
    } else if (m.type === 'discard') {
      this.placer.applyDiscards(m.runs);
      this.channels?.control.send({ type: 'ack', of: 'discard' });
    } else {
      onControl(m);
    }
  }

  private place(frame: Parameters<PagePlacer['place']>[0]): void {
    if (this.options.state.state === 'completed') return;
    this.placer.place(frame);
    if (frame.precopy && this.precopyWaiters.pending) this.precopyWaiters.reached(this.placer.figures.precopyPages);
    this.checkComplete();
  }

  private precopyPlaced(pages: number): Promise<void> {
    const bulk = this.options.pageThreads?.bulk;
    if (bulk) return bulk.precopyPlaced(pages);
    const placed = this.precopyWaiters.wait(pages);
    this.precopyWaiters.reached(this.placer.figures.precopyPages);
    return placed;
  }

  private checkComplete(): void {
    const { state, uffd, region, log } = this.options;
    if (!this.placer.allPresent || state.state !== 'postcopy-active') return;
    // Every page is present, so no vCPU can fault again on this range.
    uffd.unregister(region.address, region.length);
    this.channels?.control.send({ type: 'complete', pages: this.placer.received.count });
    state.moveTo('completed');
    log.info({ pages: this.placer.received.count }, 'all pages present; migration completed');
    this.completeHandler?.();
  }
}

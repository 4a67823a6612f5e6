// The main thread's handle on one of the destination's page threads
// (fault-worker.ts), the fault thread or the bulk thread: starts it while the
// destination waits (its modules take a while to load), then has it serve a
// duplicate of the userfaultfd, hands it each urgent (or bulk) channel,
// mirrors the migration state into it, relays its log lines, and fetches its
// figures.
import type { Worker } from 'node:worker_threads';
import type { Logger } from '../log.ts';
import type { MigrationChannel } from '../protocol/channel.ts';
import { releaseChannel } from '../protocol/channel-handoff.ts';
import type { ProtocolError } from '../protocol/errors.ts';
import { errorOfCode } from '../protocol/peer-error.ts';
import { maxPageFrameBytes } from '../protocol/page-frame.ts';
import type { PageBitmap } from '../protocol/page-bitmap.ts';
import type { MigrationState } from '../protocol/state.ts';
import { MAX_CONTROL_BYTES } from '../protocol/version.ts';
import type { KernelUserfaultfd } from '../uffd/kernel.ts';
import { firstMessage, startWorker } from '../worker.ts';
import { relayLogLine } from '../worker-log.ts';
import { CountWaiters } from './count-waiters.ts';
import type { FaultThreadData, FaultThreadFigures, FromFaultThread, PageThreadRole, ToFaultThread } from './fault-thread-messages.ts';
import type { FaultEvent } from './uffd-port.ts';

export interface ServeOptions {
  /** What this thread serves (default 'faults'). */
  readonly role?: PageThreadRole;
  readonly uffd: KernelUserfaultfd;
  readonly regionAddress: number;
  readonly regionLength: number;
  readonly pageSize: number;
  readonly received: PageBitmap;
  readonly state: MigrationState;
  /** SharedMigrationState.mirror() of the destination's state machine. */
  readonly sharedState: SharedArrayBuffer;
}

export type ChannelCloseHandler = (code: number, reason: string, error?: ProtocolError) => void;

export class FaultThread {
  private readonly worker: Worker;
  private readonly loadedPromise: Promise<void>;
  private readonly rehearsedPromise: Promise<void>;
  private threadId: number | undefined;
  private pageSize = 0;
  private allPresentHandler: (() => void) | undefined;
  /** Per adopted channel: a closing channel of an old connection reports to that connection. */
  private readonly closeHandlers = new Map<number, ChannelCloseHandler>();
  private nextChannelId = 1;
  private failHandler: ((err: Error) => void) | undefined;
  private pendingFigures: ((f: FaultThreadFigures) => void)[] = [];
  private readonly precopyWaiters = new CountWaiters();
  private lastFigures: FaultThreadFigures | undefined;
  private exited = false;
  private serving = false;

  /** `name` names the thread: 'fault', or 'bulk' for one that will serve the bulk role. */
  constructor(
    private readonly log: Logger,
    name = 'fault',
  ) {
    this.worker = startWorker(new URL('./fault-worker.ts', import.meta.url), null, { name });
    this.loadedPromise = new Promise((resolve) => {
      const onLoaded = (m: FromFaultThread): void => {
        if (m.type !== 'loaded') return;
        this.worker.off('message', onLoaded);
        this.threadId = m.tid;
        resolve();
      };
      this.worker.on('message', onLoaded);
      this.worker.once('exit', () => resolve());
    });
    this.rehearsedPromise = firstMessage(this.worker, 'rehearsed');
    this.worker.on('message', (m: FromFaultThread) => this.onMessage(m));
    this.worker.once('error', (err) => this.failHandler?.(err));
    this.worker.once('exit', (code) => {
      this.exited = true;
      for (const resolve of this.pendingFigures) resolve(this.lastFigures ?? emptyFigures());
      this.pendingFigures = [];
      if (code !== 0 && code !== 1) this.failHandler?.(new Error(`the fault thread exited with code ${code}`));
    });
    // Idle until it serves, it must not keep a destination that gave up from
    // exiting; but not while it rehearses (see close()). After the listeners:
    // adding a 'message' listener refs the worker's port again.
    void this.rehearsedPromise.then(() => {
      if (!this.serving) this.worker.unref();
    });
  }

  /** Resolves once its modules are loaded (or it exited). */
  loaded(): Promise<void> {
    return this.loadedPromise;
  }

  /** Resolves once it rehearsed the fault path (or exited); serving earlier cuts the rehearsal short. */
  rehearsed(): Promise<void> {
    return this.rehearsedPromise;
  }

  /** Its kernel thread id, once loaded: for per-thread figures (bench:fault-path). */
  get tid(): number | undefined {
    return this.threadId;
  }

  /**
   * From now on the fault thread reads this userfaultfd's events and this
   * thread only places pages with it; a bulk thread only places with it.
   */
  serve(options: ServeOptions): void {
    this.pageSize = options.pageSize;
    const data: FaultThreadData = {
      role: options.role ?? 'faults',
      uffdFd: options.uffd.handOverEvents(),
      path: options.uffd.path,
      features: options.uffd.features,
      regionAddress: options.regionAddress,
      regionLength: options.regionLength,
      pageSize: options.pageSize,
      received: options.received.buffer,
      state: options.state,
      sharedState: options.sharedState,
      logLevel: this.log.level,
    };
    this.serving = true;
    this.worker.ref();
    this.post({ type: 'serve', data });
  }

  onAllPresent(handler: () => void): void {
    this.allPresentHandler = handler;
  }

  onFailure(handler: (err: Error) => void): void {
    this.failHandler = handler;
  }

  /**
   * Hands an established, quiet channel (urgent, or bulk to a bulk thread)
   * over; this thread must not use it again. `onClose` is called once when it
   * closes there, with `error` set when the thread closed it for a protocol error.
   */
  async adopt(channel: MigrationChannel, onClose?: ChannelCloseHandler): Promise<void> {
    const maxPayload = Math.max(MAX_CONTROL_BYTES, maxPageFrameBytes(this.pageSize));
    const id = this.nextChannelId++;
    if (onClose) this.closeHandlers.set(id, onClose);
    this.post({ type: 'channel', id, handoff: await releaseChannel(channel, 'destination', maxPayload) });
  }

  closeChannel(code: number, reason: string): void {
    this.post({ type: 'close-channel', code, reason });
  }

  setState(state: MigrationState): void {
    this.post({ type: 'state', state });
  }

  /** A fault this thread happened to read: the fault thread requests its page. */
  forward(event: FaultEvent): void {
    this.post({ type: 'fault', event });
  }

  /** A bulk thread: resolves once `pages` precopy pages are in RAM. */
  precopyPlaced(pages: number): Promise<void> {
    const placed = this.precopyWaiters.wait(pages);
    this.post({ type: 'precopy-sync', pages });
    return placed;
  }

  figures(): Promise<FaultThreadFigures> {
    if (this.exited) return Promise.resolve(this.lastFigures ?? emptyFigures());
    return new Promise((resolve) => {
      this.pendingFigures.push(resolve);
      this.post({ type: 'figures' });
    });
  }

  /** The figures last fetched by figures(). */
  get latestFigures(): FaultThreadFigures | undefined {
    return this.lastFigures;
  }

  /**
   * Ends the thread and closes its descriptor of the userfaultfd. Never in
   * the middle of its rehearsal: a rehearsal fault the kernel raises is a
   * write(2) on libuv's pool asleep on a scratch page, a thread terminated
   * then never places that page, and its teardown (and so the process's
   * exit) waits for the write forever.
   */
  async close(): Promise<void> {
    if (this.exited) return;
    this.post({ type: 'end' });
    await this.rehearsedPromise;
    await this.worker.terminate();
  }

  private post(m: ToFaultThread): void {
    if (!this.exited) this.worker.postMessage(m);
  }

  private onMessage(m: FromFaultThread): void {
    switch (m.type) {
      case 'loaded':
      case 'rehearsed':
        break;
      case 'all-present':
        this.allPresentHandler?.();
        break;
      case 'precopy-placed':
        this.precopyWaiters.reached(m.pages);
        break;
      case 'channel-closed': {
        const handler = this.closeHandlers.get(m.id);
        this.closeHandlers.delete(m.id);
        handler?.(m.code, m.reason, m.error ? errorOfCode(m.error.code, m.error.message) : undefined);
        break;
      }
      case 'figures':
        this.lastFigures = m.figures;
        for (const resolve of this.pendingFigures.splice(0)) resolve(m.figures);
        break;
      case 'failed':
        this.failHandler?.(new Error(m.message));
        break;
      case 'log':
        relayLogLine(this.log, m.line);
        break;
    }
  }

}

function emptyFigures(): FaultThreadFigures {
  return {
    faults: { faults: 0, dedupedFaults: 0, lateFaults: 0, requests: 0, requestedPages: 0 },
    placer: { placedPages: 0, zeroPages: 0, duplicatePages: 0, overwrittenPages: 0, precopyPages: 0, discardedPages: 0, existedPages: 0, copyIoctls: 0, zeropageIoctls: 0 },
    latencyUs: { p50: 0, p90: 0, p99: 0, max: 0, count: 0 },
    blocktimeMs: 0,
  };
}

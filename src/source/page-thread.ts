// The main thread's handle on one of the source's page threads: the request
// thread (request-worker.ts) or the push thread (push-worker.ts). It starts
// the thread before any migration (its modules take a while to load), then
// has it serve guest RAM into the page server's shared set, hands it its
// channel right after the handshake (or, for bulk, when the push starts),
// reports those channels' closes, and relays its log lines.
import type { Worker } from 'node:worker_threads';
import type { RamHandle } from '../guest/ram.ts';
import type { Logger } from '../log.ts';
import type { MigrationChannel } from '../protocol/channel.ts';
import { releaseChannel, type ChannelHandoff } from '../protocol/channel-handoff.ts';
import { errorOfCode } from '../protocol/peer-error.ts';
import type { MigrationStateMachine } from '../protocol/state.ts';
import { MAX_CONTROL_BYTES } from '../protocol/version.ts';
import { firstMessage, startWorker } from '../worker.ts';
import { SharedMigrationState } from '../protocol/shared-state.ts';
import { relayLogLine } from '../worker-log.ts';
import { MigrationFailedError } from './errors.ts';
import type { PageShare } from './page-server.ts';
import type { FromPageThread, PageThreadData, PushThreadData, ToPageThread } from './page-thread-messages.ts';
import type { PageThreadStart } from './page-thread-worker.ts';

export interface ServeOptions {
  /** Source guest RAM, read by the thread through its own view. */
  readonly ram: RamHandle;
  readonly share: PageShare;
  readonly state: MigrationStateMachine;
}

/** `error` is set when the channel closed for a protocol error (or could not be handed over). */
export type ChannelCloseHandler = (code: number, reason: string, error?: Error) => void;

/** A channel a page thread owns (urgent: the request thread; bulk, once the push starts: the push thread): what the main thread may still do with it. */
export interface ServedChannel {
  readonly kind: 'urgent' | 'bulk';
  /** Called once when it closes. */
  onClose(handler: ChannelCloseHandler): void;
  close(code?: number, reason?: string): void;
}

/** One connection's channels once urgent went to the request thread; bulk goes to the push thread when the push starts. */
export interface SourceChannels {
  readonly control: MigrationChannel;
  bulk: MigrationChannel | ServedChannel;
  readonly urgent: ServedChannel;
}

export interface PageThreadOptions {
  /** Its worker module. */
  readonly entry: URL;
  /** Names the kernel thread ("pc:NAME"). */
  readonly name: string;
  /** The channel it serves. */
  readonly kind: ServedChannel['kind'];
  /** The machine's RAM, when known: the thread makes its view of it at once (page-thread-worker.ts). */
  readonly ram: RamHandle | undefined;
  readonly log: Logger;
}

class PageThread<Data extends PageThreadData> {
  private readonly worker: Worker;
  private readonly loadedPromise: Promise<void>;
  private readonly rehearsedPromise: Promise<void>;
  private threadId: number | undefined;
  private serving = false;
  private readonly served = new Map<number, HandedOverChannel>();
  /** Handoffs not yet posted: stop() waits for them, so no channel reaches the thread after it was told to stop. */
  private readonly handoffs = new Set<Promise<boolean>>();
  private nextId = 1;
  private failHandler: ((err: Error) => void) | undefined;
  private failure: Error | undefined;
  private stopped: (() => void) | undefined;
  private stopping: Promise<void> | undefined;
  private exited = false;

  private readonly log: Logger;
  private readonly kind: ServedChannel['kind'];
  private readonly name: string;

  constructor(options: PageThreadOptions) {
    this.log = options.log;
    this.kind = options.kind;
    this.name = options.name;
    this.worker = startWorker(options.entry, { ram: options.ram } satisfies PageThreadStart, { name: options.name });
    let loaded: () => void = () => undefined;
    this.loadedPromise = new Promise((resolve) => (loaded = resolve));
    this.rehearsedPromise = firstMessage(this.worker, 'rehearsed');
    this.worker.on('message', (m: FromPageThread) => {
      if (m.type === 'loaded') {
        this.threadId = m.tid;
        loaded();
      } else this.onMessage(m);
    });
    this.worker.once('error', (err) => this.failed(new MigrationFailedError(`the ${options.name} thread failed: ${err.message}`, err)));
    this.worker.once('exit', (code) => {
      this.exited = true;
      loaded();
      this.stopped?.();
      if (!this.stopping) this.failed(new MigrationFailedError(`the ${options.name} thread exited with code ${code}`));
    });
    // Idle until it serves, it must not keep a source whose guest never
    // migrates from exiting. After the listeners: adding a 'message' listener
    // refs the worker's port again, and an unref() before them kept `quit`
    // and a powered-off guest's source running forever. Not while it
    // rehearses: terminated then, at the process's exit, it would leave a
    // write(2) raising a rehearsal fault asleep on a page nobody places, and
    // the exit waiting for it forever (fault-thread.ts, close()).
    void this.rehearsedPromise.then(() => {
      if (!this.serving) this.worker.unref();
    });
  }

  /** Resolves once its modules are loaded (or it exited): from then on its work waits for nothing but the thread. */
  loaded(): Promise<void> {
    return this.loadedPromise;
  }

  /** Resolves once it rehearsed its work (or exited); serving earlier cuts the rehearsal short. */
  rehearsed(): Promise<void> {
    return this.rehearsedPromise;
  }

  /** Its kernel thread id, once loaded: for per-thread figures (bench:fault-path). */
  get tid(): number | undefined {
    return this.threadId;
  }

  /** Once per thread: from now on it serves `ram` into the page server's shared set. */
  protected start(data: Data): void {
    if (this.serving) throw new Error('this page thread already serves a migration');
    this.serving = true;
    this.worker.ref();
    this.post({ type: 'serve', data });
  }

  protected data(options: ServeOptions): PageThreadData {
    return { ram: options.ram, share: options.share, state: SharedMigrationState.mirror(options.state).buffer, logLevel: this.log.level };
  }

  /** The thread died (perhaps before the handler was set): page requests can no longer be answered. */
  onFailure(handler: (err: Error) => void): void {
    this.failHandler = handler;
    const failure = this.failure;
    if (failure) queueMicrotask(() => handler(failure));
  }

  /**
   * Hands an established, quiet channel to the thread; this thread must not
   * use it again. Call it when nothing can arrive on it (urgent: as soon as
   * the handshake is done): it stops reading the socket before returning. A
   * channel that cannot move is reported closed, with the reason as its error.
   */
  adopt(channel: MigrationChannel): ServedChannel {
    if (!this.serving) throw new Error('serve() the page thread before handing it channels');
    if (channel.kind !== this.kind) throw new Error(`this page thread serves ${this.kind} channels, not ${channel.kind}`);
    const handoff = releaseChannel(channel, 'source', MAX_CONTROL_BYTES);
    const served = new HandedOverChannel(this.nextId++, this.kind, this.name, channel, handoff, (m) => this.post(m));
    this.served.set(served.id, served);
    const { handedOver } = served;
    this.handoffs.add(handedOver);
    void handedOver.then((given) => {
      this.handoffs.delete(handedOver);
      if (!given) this.served.delete(served.id);
    });
    return served;
  }

  /** Closes the thread's channels, then ends it; resolves once it is gone. */
  stop(code: number, reason: string): Promise<void> {
    this.stopping ??= this.end(code, reason);
    return this.stopping;
  }

  private async end(code: number, reason: string): Promise<void> {
    await Promise.all(this.handoffs);
    if (this.exited) return;
    await new Promise<void>((resolve) => {
      this.stopped = resolve;
      this.post({ type: 'stop', code, reason });
    });
    await this.worker.terminate();
  }

  private failed(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.failHandler?.(err);
  }

  protected post(m: ToPageThread<Data> | ToPageThread): void {
    if (!this.exited) this.worker.postMessage(m);
  }

  private onMessage(m: Exclude<FromPageThread, { type: 'loaded' }>): void {
    switch (m.type) {
      case 'channel-closed':
        this.served.get(m.id)?.closed(m.code, m.reason, m.error ? errorOfCode(m.error.code, m.error.message) : undefined);
        this.served.delete(m.id);
        break;
      case 'stopped':
        this.stopped?.();
        break;
      case 'log':
        relayLogLine(this.log, m.line);
        break;
    }
  }
}

class HandedOverChannel implements ServedChannel {
  /** Settles true once the thread was given the channel, false if it could not be. */
  readonly handedOver: Promise<boolean>;
  private readonly handlers: ChannelCloseHandler[] = [];
  private closedWith: Parameters<ChannelCloseHandler> | undefined;

  constructor(
    readonly id: number,
    readonly kind: ServedChannel['kind'],
    thread: string,
    channel: MigrationChannel,
    handoff: Promise<ChannelHandoff>,
    private readonly post: (m: ToPageThread) => void,
  ) {
    this.handedOver = handoff.then(
      (h) => {
        post({ type: 'channel', id, handoff: h });
        return true;
      },
      (err: Error) => {
        channel.close(1011, `cannot hand the channel to the ${thread} thread`);
        this.closed(1006, err.message, err);
        return false;
      },
    );
  }

  onClose(handler: ChannelCloseHandler): void {
    const closedWith = this.closedWith;
    if (closedWith) queueMicrotask(() => handler(...closedWith));
    else this.handlers.push(handler);
  }

  close(code = 1000, reason = ''): void {
    void this.handedOver.then((given) => {
      if (given) this.post({ type: 'close-channel', id: this.id, code, reason });
    });
  }

  closed(...args: Parameters<ChannelCloseHandler>): void {
    if (this.closedWith) return;
    this.closedWith = args;
    for (const handler of this.handlers) handler(...args);
  }
}

/** The request thread (QEMU's return-path thread): answers page requests on the urgent channel. */
export class RequestThread extends PageThread<PageThreadData> {
  /** `ram`: the machine's, when it is known already. */
  constructor(log: Logger, ram?: RamHandle) {
    super({ entry: new URL('./request-worker.ts', import.meta.url), name: 'page-requests', kind: 'urgent', ram, log });
  }

  /** Once per thread: from now on it answers page requests from `ram` into the page server's shared set. */
  serve(options: ServeOptions): void {
    this.start(this.data(options));
  }
}

export interface PushOptions extends ServeOptions {
  /** Host address of RAM when it is a private anonymous mapping: pages never populated there are zero without being read. */
  readonly ramAddress: number | undefined;
  readonly maxPostcopyBandwidth: number | undefined;
}

/** The push thread (QEMU's migration thread, in postcopy): pushes every page not yet sent on the bulk channel. */
export class PushThread extends PageThread<PushThreadData> {
  /** `ram`: the machine's, when it is known already. */
  constructor(log: Logger, ram?: RamHandle) {
    super({ entry: new URL('./push-worker.ts', import.meta.url), name: 'page-push', kind: 'bulk', ram, log });
  }

  serve(options: PushOptions): void {
    this.start({ ...this.data(options), ramAddress: options.ramAddress, maxPostcopyBandwidth: options.maxPostcopyBandwidth });
  }

  /** Push every page not yet sent on the newest bulk channel it was given; again after a recovery. */
  push(): void {
    this.post({ type: 'push' });
  }

  setMaxPostcopyBandwidth(bytesPerSecond: number | undefined): void {
    this.post({ type: 'max-postcopy-bandwidth', bytesPerSecond });
  }
}

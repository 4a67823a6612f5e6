// The main thread's handle on the source's request thread (request-worker.ts):
// starts it before any migration (its modules take a while to load), then
// has it serve guest RAM into the page server's shared set, hands it each
// urgent channel right after the handshake, reports those channels' closes,
// and relays its log lines.
import type { Worker } from 'node:worker_threads';
import type { RamHandle } from '../guest/ram.ts';
import type { Logger } from '../log.ts';
import type { MigrationChannel } from '../protocol/channel.ts';
import { releaseChannel, type ChannelHandoff } from '../protocol/channel-handoff.ts';
import { errorOfCode } from '../protocol/peer-error.ts';
import type { MigrationStateMachine } from '../protocol/state.ts';
import { MAX_CONTROL_BYTES } from '../protocol/version.ts';
import { firstMessage, startWorker } from '../worker.ts';
import { relayLogLine } from '../worker-log.ts';
import { MigrationFailedError } from './errors.ts';
import type { RequestShare } from './page-server.ts';
import type { FromRequestThread, RequestThreadData, ToRequestThread } from './request-thread-messages.ts';
import { SharedMigrationState } from '../protocol/shared-state.ts';

export interface ServeOptions {
  /** Source guest RAM, read by the thread through its own view. */
  readonly ram: RamHandle;
  readonly share: RequestShare;
  readonly state: MigrationStateMachine;
}

/** `error` is set when the channel closed for a protocol error (or could not be handed over). */
export type ChannelCloseHandler = (code: number, reason: string, error?: Error) => void;

/** An urgent channel the request thread owns: what the main thread may still do with it. */
export interface ServedChannel {
  readonly kind: 'urgent';
  /** Called once when it closes. */
  onClose(handler: ChannelCloseHandler): void;
  close(code?: number, reason?: string): void;
}

/** One connection's channels once urgent went to the request thread. */
export interface SourceChannels {
  readonly control: MigrationChannel;
  readonly bulk: MigrationChannel;
  readonly urgent: ServedChannel;
}

export class RequestThread {
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

  constructor(private readonly log: Logger) {
    this.worker = startWorker(new URL('./request-worker.ts', import.meta.url), null, { name: 'page-requests' });
    let loaded: () => void = () => undefined;
    this.loadedPromise = new Promise((resolve) => (loaded = resolve));
    this.rehearsedPromise = firstMessage(this.worker, 'rehearsed');
    this.worker.on('message', (m: FromRequestThread) => {
      if (m.type === 'loaded') {
        this.threadId = m.tid;
        loaded();
      } else this.onMessage(m);
    });
    this.worker.once('error', (err) => this.failed(new MigrationFailedError(`the page-request thread failed: ${err.message}`, err)));
    this.worker.once('exit', (code) => {
      this.exited = true;
      loaded();
      this.stopped?.();
      if (!this.stopping) this.failed(new MigrationFailedError(`the page-request thread exited with code ${code}`));
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

  /** Resolves once its modules are loaded (or it exited): from then on a request waits for nothing but the thread. */
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

  /** Once per thread: from now on it answers page requests from `ram` into the page server's shared set. */
  serve(options: ServeOptions): void {
    if (this.serving) throw new Error('this page-request thread already serves a migration');
    this.serving = true;
    const data: RequestThreadData = {
      ram: options.ram,
      share: options.share,
      state: SharedMigrationState.mirror(options.state).buffer,
      logLevel: this.log.level,
    };
    this.worker.ref();
    this.post({ type: 'serve', data });
  }

  /** The thread died (perhaps before the handler was set): page requests can no longer be answered. */
  onFailure(handler: (err: Error) => void): void {
    this.failHandler = handler;
    const failure = this.failure;
    if (failure) queueMicrotask(() => handler(failure));
  }

  /**
   * Hands an established, quiet urgent channel to the thread; this thread
   * must not use it again. Call it as soon as the handshake is done: it stops
   * reading the socket before returning. A channel that cannot move is
   * reported closed, with the reason as its error.
   */
  adopt(channel: MigrationChannel): ServedChannel {
    if (!this.serving) throw new Error('serve() the page-request thread before handing it channels');
    const served = new HandedOverChannel(this.nextId++, channel, releaseChannel(channel, 'source', MAX_CONTROL_BYTES), (m) => this.post(m));
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

  private post(m: ToRequestThread): void {
    if (!this.exited) this.worker.postMessage(m);
  }

  private onMessage(m: Exclude<FromRequestThread, { type: 'loaded' }>): void {
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
  readonly kind = 'urgent';
  /** Settles true once the thread was given the channel, false if it could not be. */
  readonly handedOver: Promise<boolean>;
  private readonly handlers: ChannelCloseHandler[] = [];
  private closedWith: Parameters<ChannelCloseHandler> | undefined;

  constructor(
    readonly id: number,
    channel: MigrationChannel,
    handoff: Promise<ChannelHandoff>,
    private readonly post: (m: ToRequestThread) => void,
  ) {
    this.handedOver = handoff.then(
      (h) => {
        post({ type: 'channel', id, handoff: h });
        return true;
      },
      (err: Error) => {
        channel.close(1011, 'cannot hand the channel to the page-request thread');
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

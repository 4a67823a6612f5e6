// One outgoing migration, driven from the source: connect the three channels,
// run precopy rounds (precopy, hybrid), switch over (stop the vCPUs, send the
// discards and the machine state, start the guest on the destination), then
// serve postcopy until the destination holds every page. Figures follow
// QEMU's query-migrate.
//
//   postcopy:  setup ─────────────────────────────► device ─► postcopy-active ─► completed
//   precopy:   setup ─► precopy-active (rounds) ──► device ─► postcopy-active ─► completed (nothing missing)
//                              └─ rounds exhausted: cancelled, the guest runs on here
//   hybrid:    setup ─► precopy-active (N rounds) ► device (+discards) ─► postcopy-active ─► completed
import { EventEmitter } from 'node:events';
import { PostcopyError } from '../errors.ts';
import type { Machine } from '../guest/machine.ts';
import { encodeMachineState } from '../guest/state.ts';
import type { Logger } from '../log.ts';
import { generateSessionId } from '../protocol/auth.ts';
import { MigrationChannel, RECONNECTING_CLOSE_CODE } from '../protocol/channel.ts';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import { connectMigration } from '../protocol/connect.ts';
import type { ControlMessage, MachineIdentity, Message } from '../protocol/messages.ts';
import { MigrationStateMachine, type MigrationState } from '../protocol/state.ts';
import { PAGE_SIZE } from '../uffd/pages.ts';
import { expectedDowntimeMs } from './downtime-estimate.ts';
import { MigrationCancelledError, MigrationFailedError } from './errors.ts';
import type { MachineConfigPayload, MigrationInfo, MigrationMode, TransferredState } from './migration-info.ts';
import { PageServer } from './page-server.ts';
import type { PushThread, RequestThread, SourceChannels } from './page-thread.ts';

export interface OutgoingMigrationOptions {
  readonly machine: Machine;
  /** ws://host:port of the destination. */
  readonly url: string;
  readonly token: string;
  readonly mode: MigrationMode;
  /** Precopy converges when the pages left would take at most this long to send. */
  readonly downtimeLimitMs: number;
  /** Precopy gives up (precopy) or switches to postcopy (hybrid) after this many rounds. */
  readonly maxRounds: number;
  /** Hybrid switches to postcopy after this many rounds at the latest. */
  readonly hybridRounds: number;
  /** QEMU's auto-converge: each precopy round that does not converge slows the vCPUs further. */
  readonly autoConverge?: boolean;
  /** Bytes per second for the postcopy push; unset: unlimited. */
  readonly maxPostcopyBandwidth?: number;
  /** Bytes per second for precopy rounds while the guest runs; unset: unlimited. */
  readonly maxBandwidth?: number;
  /** Shared-storage disk path the destination opens. */
  readonly disk?: string;
  /** After the connection breaks in postcopy, how long to keep trying to reconnect (default 120 s). */
  readonly recoveryMs?: number;
  /** Answers page requests; started ahead, as its modules take a while to load. The migration ends it. */
  readonly requests: RequestThread;
  /** Pushes the pages in postcopy; started ahead too, and ended by the migration. */
  readonly pushes: PushThread;
  readonly log: Logger;
}

/** What migrate_set_parameter changes; a cap present but undefined is lifted. */
export interface MigrationParameters {
  readonly downtimeLimitMs?: number;
  readonly maxBandwidth?: number;
  readonly maxPostcopyBandwidth?: number;
}

const RECONNECT_INTERVAL_MS = 500;

export class OutgoingMigration extends EventEmitter<{ state: [MigrationState] }> {
  readonly state = new MigrationStateMachine();
  private readonly options: OutgoingMigrationOptions;
  private readonly log: Logger;
  private server: PageServer | undefined;
  private channels: SourceChannels | undefined;
  private readonly session = generateSessionId();
  private startedAt = performance.now();
  private setupMs = 0;
  private downtimeMs: number | undefined;
  private endedAt: number | undefined;
  private rounds = 0;
  /** What migrate_set_parameter may change while the migration runs. */
  private readonly parameters: { downtimeLimitMs: number; maxBandwidth?: number; maxPostcopyBandwidth?: number };
  private expectedDowntime: number | undefined;
  private postcopyRequested = false;
  /** Set when precopy converged: the last dirty pages, sent while the vCPUs are stopped. */
  private pendingFinalRound: number[] | undefined;
  private cancelRequested: string | undefined;
  /** Rejects once cancel() is called: see orCancelled(). */
  private readonly cancellation: Promise<never>;
  private cancelNow: ((err: Error) => void) | undefined;
  /** The destination ended the migration itself (cancel or error): nothing to tell it. */
  private peerEnded = false;
  private failure: Error | undefined;
  private handedOverFlag = false;
  /** The destination acked machine-state: from then on it may run the guest. */
  private stateTaken = false;
  /** Replies awaited from the destination: an ack of a message type, or 'ready'. */
  private readonly replies = new Map<string, { resolve: () => void; reject: (err: Error) => void }>();
  private completed: (() => void) | undefined;
  private broken: ((err: Error) => void) | undefined;

  constructor(options: OutgoingMigrationOptions) {
    super();
    this.options = options;
    this.parameters = { downtimeLimitMs: options.downtimeLimitMs, maxBandwidth: options.maxBandwidth, maxPostcopyBandwidth: options.maxPostcopyBandwidth };
    this.cancellation = new Promise<never>((_, reject) => (this.cancelNow = reject));
    this.cancellation.catch(() => undefined);
    this.log = options.log.child({ module: 'migration', side: 'source' });
    this.state.onChange((_from, to) => this.emit('state', to));
  }

  /**
   * migrate_set_parameter: a new downtime limit counts from the next precopy
   * round's end, a new cap (undefined: none) from the next frame.
   */
  setParameters(p: MigrationParameters): void {
    if (p.downtimeLimitMs !== undefined) this.parameters.downtimeLimitMs = p.downtimeLimitMs;
    if ('maxBandwidth' in p) {
      this.parameters.maxBandwidth = p.maxBandwidth;
      this.server?.setMaxBandwidth(p.maxBandwidth);
    }
    if ('maxPostcopyBandwidth' in p) {
      this.parameters.maxPostcopyBandwidth = p.maxPostcopyBandwidth;
      if (this.server) this.options.pushes.setMaxPostcopyBandwidth(p.maxPostcopyBandwidth);
    }
    this.log.info({ ...this.parameters }, 'migration parameters set');
  }

  /**
   * True once `postcopy-run` was sent: from then on the destination may run
   * the guest, so the source must never run its copy again, whatever happens.
   */
  get handedOver(): boolean {
    return this.handedOverFlag;
  }

  /** migrate_start_postcopy: leave precopy at the end of the current round. */
  startPostcopy(): void {
    this.postcopyRequested = true;
  }

  /** Gives up before the switchover; after it the guest runs on the destination and only finishing is left. */
  cancel(reason = 'cancelled by the user'): boolean {
    if (!this.state.canMoveTo('cancelled')) return false;
    this.cancelRequested = reason;
    this.cancelNow?.(this.cancelledError());
    return true;
  }

  /** Runs the whole migration; resolves with the final figures, rejects only on failure or cancellation. */
  async run(): Promise<MigrationInfo> {
    const { machine, mode } = this.options;
    this.startedAt = performance.now();
    try {
      const region = machine.ram.region;
      const ramAddress = region?.backend === 'kernel' ? region.address : undefined;
      const server = new PageServer({
        ram: machine.ram.bytes(),
        ramAddress,
        pageSize: PAGE_SIZE,
        maxBandwidth: this.parameters.maxBandwidth,
        log: this.log,
      });
      this.server = server;
      const done = this.watch();
      const { requests, pushes } = this.options;
      for (const thread of [requests, pushes]) thread.onFailure((err) => this.broken?.(err));
      requests.serve({ ram: machine.ram.handle, share: server.share, state: this.state });
      pushes.serve({ ram: machine.ram.handle, share: server.share, state: this.state, ramAddress, maxPostcopyBandwidth: this.parameters.maxPostcopyBandwidth });
      const channels = await this.connect(false);
      this.channels = channels;
      server.attach({ control: channels.control, bulk: channels.bulk });
      this.listen(channels, server);
      const config: MachineConfigPayload = { image: machine.image.bytes, guestArgs: machine.guestArgs ?? null, disk: this.options.disk ?? null };
      channels.control.send({ type: 'machine-config', config });
      await this.orCancelled(this.awaitReply('ready'));
      this.setupMs = performance.now() - this.startedAt;
      this.log.info({ url: this.options.url, mode, setupMs: Math.round(this.setupMs) }, 'migration channels up');

      let discard: number[] = [];
      if (mode !== 'postcopy') discard = await this.precopy(server);
      await this.switchover(server, discard);
      await done;
      this.state.moveTo('completed');
      this.endedAt = performance.now();
      this.log.info(this.info(), 'migration completed');
      return this.info();
    } catch (err) {
      this.endedAt = performance.now();
      this.failure = err as Error;
      const cancelled = err instanceof MigrationCancelledError;
      if (!this.handedOverFlag && !this.peerEnded) this.tellDestination(err as Error, cancelled);
      if (cancelled && this.state.canMoveTo('cancelled')) this.state.moveTo('cancelled');
      else if (this.state.canMoveTo('failed')) this.state.moveTo('failed');
      throw err;
    } finally {
      // Cancelled or failed, the guest runs on here at full speed; handed over, its vCPUs here are stopped anyway.
      if (this.options.machine.throttle !== 0) this.options.machine.setThrottle(0);
      this.server?.stop();
      this.closeChannels();
    }
  }

  // Not awaited: the figures are final now; the request thread ends once its
  // channel has closed, and the process can exit. Ended before the hand-over,
  // the destination was told why on control, and it must hear that before
  // its page channels close: their closes reach it by other threads and
  // sockets, and one that came first was taken for the reason (precopy that
  // did not converge showed as "the source closed the urgent channel"). So
  // control closes first, and the page channels once its close is answered.
  private closeChannels(): void {
    const c = this.channels;
    const closePages = (): void => {
      c?.bulk.close(1000, 'migration over');
      void this.options.requests.stop(1000, 'migration over');
      void this.options.pushes.stop(1000, 'migration over');
    };
    const afterControl = c !== undefined && !this.handedOverFlag && c.control.open;
    if (afterControl) c.control.onClose(closePages);
    c?.control.close(1000, 'migration over');
    if (!afterControl) closePages();
  }

  /**
   * Connects all three channels and gives urgent to the request thread
   * before this thread can read it; bulk stays here for precopy until
   * handOverBulk().
   */
  private async connect(resume: boolean): Promise<SourceChannels & { bulk: MigrationChannel }> {
    const channels = await connectMigration({
      url: this.options.url,
      token: this.options.token,
      session: this.session,
      resume,
      identity: this.identity(),
      state: this.state,
      log: this.log,
    });
    return { control: channels.control, bulk: channels.bulk, urgent: this.options.requests.adopt(channels.urgent) };
  }

  /** What the destination checks in the handshake, on the first connection and on every reconnect. */
  private identity(): MachineIdentity {
    const { machine } = this.options;
    return { pageSize: PAGE_SIZE, ramBase: 0x8000_0000, ramSize: machine.ramSize, vcpus: machine.vcpus, imageSha256: machine.imageHash };
  }

  /** query-migrate: where the migration is and what it has moved. */
  info(): MigrationInfo {
    const f = this.server?.figures;
    const end = this.endedAt ?? performance.now();
    const totalMs = end - this.startedAt;
    const transferredBytes = f?.transferredBytes ?? 0;
    const sendingMs = Math.max(1, end - this.startedAt - this.setupMs);
    return {
      status: this.state.state,
      mode: this.options.mode,
      totalMs,
      setupMs: this.setupMs,
      downtimeMs: this.downtimeMs ?? null,
      expectedDowntimeMs: this.expectedDowntime ?? null,
      transferredBytes,
      remainingPages: f?.remainingPages ?? Math.floor(this.options.machine.ramSize / PAGE_SIZE),
      totalPages: Math.floor(this.options.machine.ramSize / PAGE_SIZE),
      normalPages: f?.normalPages ?? 0,
      zeroPages: f?.zeroPages ?? 0,
      precopyPages: f?.precopyPages ?? 0,
      mbps: (transferredBytes * 8) / 1e6 / (sendingMs / 1000),
      postcopyRequests: f?.postcopyRequests ?? 0,
      precopyRounds: this.rounds,
      cpuThrottlePercentage: this.options.machine.throttle,
      downtimeLimitMs: this.parameters.downtimeLimitMs,
      maxBandwidth: this.parameters.maxBandwidth ?? 0,
      maxPostcopyBandwidth: this.parameters.maxPostcopyBandwidth ?? 0,
      error: this.failure?.message ?? null,
    };
  }

  // Settles when the destination says `complete` (or the migration breaks for good).
  private watch(): Promise<void> {
    const result = new Promise<void>((resolve, reject) => {
      this.completed = resolve;
      this.broken = (err) => {
        this.failure ??= err;
        reject(err);
        for (const r of this.replies.values()) r.reject(err);
        this.replies.clear();
      };
    });
    // A failure before anyone awaits `result` must not become an unhandled rejection.
    result.catch(() => undefined);
    return result;
  }

  // Every control message the destination may send on this connection lands in onControl; page requests go to the request thread.
  private listen(channels: SourceChannels, server: PageServer): void {
    channels.control.onMessage((m: Message) => this.onControl(m as ControlMessage));
    for (const c of [channels.control, channels.bulk, channels.urgent]) this.watchClose(channels, c, server);
  }

  private watchClose(channels: SourceChannels, c: SourceChannels['bulk'], server: PageServer): void {
    c.onClose((code, reason, error) => {
      const state = this.state.state;
      if (this.channels !== channels || state === 'completed' || state === 'postcopy-paused') return;
      const why = `the destination closed the ${c.kind} channel (${code}${reason ? `: ${reason}` : ''})`;
      if (state === 'postcopy-active' && !error && !this.peerEnded) {
        void this.recover(server, why);
        return;
      }
      this.broken?.(error ?? new MigrationFailedError(why));
    });
  }

  /**
   * The bulk channel goes to the push thread, once nothing more is sent on
   * it from here (precopy is over); a channel released from this thread
   * reports no close here any more, so its close is watched again.
   */
  private handOverBulk(channels: SourceChannels, server: PageServer): void {
    const { bulk } = channels;
    if (!(bulk instanceof MigrationChannel)) return;
    server.detach();
    channels.bulk = this.options.pushes.adopt(bulk);
    this.watchClose(channels, channels.bulk, server);
  }

  /**
   * Postcopy lost its connection: the guest runs on the destination and some
   * of its pages are only here, so neither side may give up. Reconnect to the
   * same destination and session until it works or recoveryMs runs out.
   */
  private async recover(server: PageServer, why: string): Promise<void> {
    this.state.moveTo('postcopy-paused');
    server.detach();
    const old = this.channels!;
    for (const c of [old.control, old.bulk, old.urgent]) c.close(RECONNECTING_CLOSE_CODE, 'connection lost; reconnecting');
    const limitMs = this.options.recoveryMs ?? 120_000;
    this.log.warn({ reason: why, retryForMs: limitMs }, 'postcopy paused: the connection to the destination broke; reconnecting');
    const deadline = performance.now() + limitMs;
    let lastError: Error | undefined;
    while (performance.now() < deadline && this.state.state === 'postcopy-paused') {
      try {
        const channels = await this.connect(true);
        this.channels = channels;
        this.listen(channels, server);
        this.handOverBulk(channels, server);
        this.log.info({ url: this.options.url }, 'reconnected to the destination; waiting for its list of received pages');
        return;
      } catch (err) {
        lastError = err as Error;
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_INTERVAL_MS));
      }
    }
    if (this.state.state !== 'postcopy-paused') return;
    this.broken?.(
      new MigrationFailedError(
        `${why}, and reconnecting for ${Math.round(limitMs / 1000)} s failed (${lastError?.message ?? 'no attempt'}). ` +
          'The guest was running on the destination while some of its pages were only here, so it cannot continue on either side',
      ),
    );
  }

  private onControl(m: ControlMessage): void {
    switch (m.type) {
      case 'ack':
        if (m.of === 'machine-state') this.stateTaken = true;
        this.replied(`ack:${m.of}`);
        break;
      case 'ready':
        this.replied('ready');
        break;
      case 'complete':
        this.completed?.();
        break;
      case 'error':
        // A destination that refused the state never ran the guest (postcopy-run is only valid after it).
        if (this.handedOverFlag && !this.stateTaken) this.handedOverFlag = false;
        this.peerEnded = true;
        this.broken?.(new MigrationFailedError(`the destination failed the migration: ${m.code}: ${m.message}`));
        break;
      case 'recover': {
        const server = this.server!;
        server.markReceived(PageBitmap.from(server.pageCount, m.received));
        this.state.moveTo('postcopy-active');
        this.channels!.control.send({ type: 'resume' });
        this.options.pushes.push();
        // The destination only pauses once it runs the guest: a switchover whose acks were lost is over.
        this.stateTaken = true;
        this.replied('ack:machine-state');
        this.replied('ack:postcopy-run');
        this.log.info({ missing: server.figures.remainingPages }, 'postcopy resumed');
        break;
      }
      case 'cancel':
        this.peerEnded = true;
        this.broken?.(new MigrationCancelledError(`the destination cancelled the migration: ${m.reason}`));
        break;
      default:
        this.log.warn({ type: m.type }, 'unexpected control message from the destination; ignored');
    }
  }

  /** Settles when the destination sends `key` (or rejects when the migration breaks first). */
  private awaitReply(key: `ack:${ControlMessage['type']}` | 'ready'): Promise<void> {
    const failure = this.failure;
    if (failure) return Promise.reject(failure);
    const reply = new Promise<void>((resolve, reject) => this.replies.set(key, { resolve, reject }));
    reply.catch(() => undefined);
    return reply;
  }

  private replied(key: string): void {
    this.replies.get(key)?.resolve();
    this.replies.delete(key);
  }

  /**
   * Dirty-page rounds while the guest runs. Returns the pages to discard on
   * the destination (sent, then dirtied) when it switches to postcopy; throws
   * MigrationCancelledError when precopy cannot converge.
   */
  private async precopy(server: PageServer): Promise<number[]> {
    const { machine, mode, maxRounds, hybridRounds } = this.options;
    const control = this.channels!.control;
    this.state.moveTo('precopy-active');
    control.send({ type: 'precopy-begin' });
    machine.fetchAndClearDirty();
    const pageCount = Math.floor(machine.ramSize / PAGE_SIZE);
    let pages: number[] = Array.from({ length: pageCount }, (_, i) => i);
    for (;;) {
      this.checkCancelled();
      const began = performance.now();
      const wireBefore = server.figures.transferredBytes;
      await this.orCancelled(server.sendPrecopy(pages));
      await this.precopyPlaced(server);
      this.rounds++;
      const round = { wireBytes: server.figures.transferredBytes - wireBefore, elapsedMs: performance.now() - began };
      const dirty = machine.fetchAndClearDirty();
      const expectedMs = expectedDowntimeMs(dirty.length, PAGE_SIZE, round);
      this.expectedDowntime = expectedMs;
      this.log.info({ round: this.rounds, sentPages: pages.length, wireBytes: round.wireBytes, dirtyPages: dirty.length, expectedDowntimeMs: +expectedMs.toFixed(2) }, 'precopy round');
      // Read each round: migrate_set_parameter may have moved it.
      const { downtimeLimitMs } = this.parameters;
      if (expectedMs <= downtimeLimitMs) {
        // Converged: the last dirty set goes while the vCPUs are stopped.
        this.pendingFinalRound = dirty;
        return [];
      }
      if (mode === 'hybrid' && (this.postcopyRequested || this.rounds >= hybridRounds)) return dirty;
      if (this.postcopyRequested) return dirty;
      if (this.rounds >= maxRounds) {
        const rate = ((dirty.length * PAGE_SIZE) / 1e6 / Math.max(0.001, (performance.now() - began) / 1000)).toFixed(0);
        throw new MigrationCancelledError(
          `precopy did not converge after ${this.rounds} rounds: the guest dirties ${dirty.length} pages a round (≈${rate} MB/s) ` +
            `and sending them would take ${expectedMs.toFixed(0)} ms, over the ${downtimeLimitMs} ms downtime limit. ` +
            `The guest keeps running here; retry with --mode hybrid or postcopy, or raise --downtime-limit`,
        );
      }
      if (this.options.autoConverge) this.throttleHarder();
      pages = dirty;
    }
  }

  /** Before the hand-over the destination holds nothing it may run: say why it ends, so it reports that rather than a closed socket. */
  private tellDestination(err: Error, cancelled: boolean): void {
    const control = this.channels?.control;
    if (!control?.open) return;
    if (cancelled) control.send({ type: 'cancel', reason: err.message });
    else control.send({ type: 'error', code: err instanceof PostcopyError ? err.code : 'MIGRATE_ERR_FAILED', message: err.message });
  }

  // QEMU's steps (cpu-throttle-initial 20, -increment 10, max-cpu-throttle
  // 99): a guest that dirties memory faster than the link carries it gets
  // less time to, until what is left after a round fits the downtime limit.
  private throttleHarder(): void {
    const { machine } = this.options;
    const percent = machine.throttle === 0 ? 20 : Math.min(99, machine.throttle + 10);
    if (percent === machine.throttle) return;
    machine.setThrottle(percent);
    this.log.info({ cpuThrottlePercentage: percent }, 'auto-converge: vCPUs slowed');
  }

  // A destination that stopped reading leaves a send window full, or an ack
  // unanswered, for good: a cancel must not wait behind either. The abandoned
  // wait settles into the race, unheard, once the channels close.
  private orCancelled<T>(wait: Promise<T>): Promise<T> {
    return Promise.race([wait, this.cancellation]);
  }

  private cancelledError(): MigrationCancelledError {
    return new MigrationCancelledError(`migration cancelled: ${this.cancelRequested}; the guest keeps running here`);
  }

  private checkCancelled(): void {
    if (this.cancelRequested !== undefined) {
      throw this.cancelledError();
    }
  }

  // Precopy pages go on bulk, discards and the state on control: nothing that
  // must come after them is sent until the destination holds every precopy
  // page sent. A round's time is then what its pages took to land in RAM
  // there, the rate its expected downtime is judged by.
  private async precopyPlaced(server: PageServer): Promise<void> {
    const placed = this.awaitReply('ack:precopy-sync');
    this.channels!.control.send({ type: 'precopy-sync', pages: server.precopyPagesSent });
    await this.orCancelled(placed);
  }

  // With the guest still running here, discard the pages already known dirty
  // (every round ended with the destination holding its pages, so none can
  // land after this) and wait for the ack: only pages dirtied since are left
  // for the downtime.
  private async settlePrecopy(server: PageServer, discard: number[]): Promise<void> {
    const runs = toRuns(discard);
    server.forget(runs);
    const applied = this.awaitReply('ack:discard');
    this.channels!.control.send({ type: 'discard', runs });
    await this.orCancelled(applied);
    this.checkCancelled();
  }

  // Downtime runs from the vCPUs stopping here to the destination's ack that
  // its vCPUs run: everything between is on the critical path.
  private async switchover(server: PageServer, discard: number[]): Promise<void> {
    const { machine } = this.options;
    const control = this.channels!.control;
    // Before the vCPUs stop: once the guest runs on the destination, its faults must not wait for this thread's start-up.
    await this.options.requests.loaded();
    this.checkCancelled();
    if (this.state.state === 'precopy-active') await this.settlePrecopy(server, discard);
    const stoppedAt = performance.now();
    const times = await machine.pause();
    this.log.info({ times }, 'vCPUs stopped for the switchover');
    // Only a precopy leaves pages on the destination that the last run of the guest may have dirtied.
    if (this.pendingFinalRound) {
      const finalRound = [...new Set([...this.pendingFinalRound, ...machine.fetchAndClearDirty()])].sort((a, b) => a - b);
      await this.orCancelled(server.sendPrecopy(finalRound, true));
      await this.precopyPlaced(server);
    } else if (this.state.state === 'precopy-active') {
      const runs = machine.fetchAndClearDirtyRuns();
      server.forget(runs);
      control.send({ type: 'discard', runs });
    }
    const transferred: TransferredState = { machine: encodeMachineState(machine.save()) };
    // Both at once, no round trip between them: the destination takes them in
    // order and can only run the guest once it has taken the state. If it
    // refuses the state it says so before acking it, and the guest resumes here.
    // Each move before its message: the request thread checks page requests
    // against the state, and the destination's first one may reach that
    // thread before this one gets past the send.
    const stateAcked = this.awaitReply('ack:machine-state');
    this.state.moveTo('device');
    control.send({ type: 'machine-state', state: transferred });
    const running = this.awaitReply('ack:postcopy-run');
    this.handedOverFlag = true;
    this.state.moveTo('postcopy-active');
    control.send({ type: 'postcopy-run' });
    await stateAcked;
    await running;
    this.downtimeMs = performance.now() - stoppedAt;
    this.log.info({ downtimeMs: +this.downtimeMs.toFixed(2) }, 'guest running on the destination');
    // Only now: handing bulk over and the push would otherwise compete with the switchover for the cores.
    this.handOverBulk(this.channels!, server);
    this.options.pushes.push();
  }
}

/** Ascending page indexes as [start, length, ...] runs. */
export function toRuns(pages: readonly number[]): number[] {
  const runs: number[] = [];
  for (const p of pages) {
    const last = runs.length - 2;
    if (last >= 0 && runs[last] + runs[last + 1] === p) runs[last + 1]++;
    else runs.push(p, 1);
  }
  return runs;
}

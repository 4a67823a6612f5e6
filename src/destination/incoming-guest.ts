// The destination of one migration: waits for a source on its port, registers
// fresh guest RAM with the userfaultfd before anything lands in it, places
// precopy pages and discards as they come, builds the machine from the state
// sent at the switchover, starts its vCPUs on `postcopy-run` and then serves
// their faults until every page is present.
import { EventEmitter } from 'node:events';
import { PostcopyError } from '../errors.ts';
import { Machine } from '../guest/machine.ts';
import { decodeMachineState } from '../guest/state.ts';
import { ramFromRegion } from '../guest/ram.ts';
import { VcpuPool } from '../guest/vcpu-pool.ts';
import type { Logger } from '../log.ts';
import { RECONNECTING_CLOSE_CODE } from '../protocol/channel.ts';
import { ProtocolMalformedError, ProtocolStateError, type ProtocolError } from '../protocol/errors.ts';
import { MigrationListener, type IncomingMigration } from '../protocol/listener.ts';
import type { ControlMessage } from '../protocol/messages.ts';
import { MigrationStateMachine, type MigrationState } from '../protocol/state.ts';
import { MigrationCancelledError, MigrationFailedError } from '../source/errors.ts';
import type { MachineConfigPayload, TransferredState } from '../source/migration-info.ts';
import { allocateRegion, openUserfaultfd, PAGE_SIZE, type AccessPath, type GuestRegion, type Userfaultfd } from '../uffd/index.ts';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import { KernelUserfaultfd } from '../uffd/kernel.ts';
import type { LatencySummary } from './fault-stats.ts';
import { SharedMigrationState } from '../protocol/shared-state.ts';
import { rehearseHandshake } from '../protocol/handshake-rehearsal.ts';
import { FaultThread } from './fault-thread.ts';
import { IncomingPages } from './incoming-pages.ts';
import { placementRegion } from './uffd-port.ts';

export interface IncomingGuestOptions {
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly uffdPath: AccessPath | 'auto';
  /** Disk image to open instead of the path the source names (shared storage mounted elsewhere). */
  readonly disk?: string;
  /** Every hart stops at exactly this time (Infinity: runs until the guest powers off). */
  readonly stopAt: number;
  readonly log: Logger;
}

/** The destination's half of query-migrate. */
export interface DestinationFigures {
  status: MigrationState;
  backend: string;
  faults: number;
  postcopyRequests: number;
  placedPages: number;
  zeroPages: number;
  duplicatePages: number;
  discardedPages: number;
  copyIoctls: number;
  blocktimeMs: number;
  faultLatencyUs: LatencySummary;
}

interface Events {
  state: [MigrationState];
  /** The guest runs here now. */
  started: [Machine];
  /** Every page is present; the source let go. */
  completed: [DestinationFigures];
  failed: [Error];
}

/** How long a destination that lost its source during the switchover waits for it: as long as the source retries (recoveryMs). */
const SOURCE_RETURN_MS = 120_000;

export class IncomingGuest extends EventEmitter<Events> {
  private readonly log: Logger;
  private uffd: Userfaultfd | undefined;
  private region: GuestRegion | undefined;
  // Started while waiting for a source, so a guest's vCPUs are loaded by the time it connects.
  private readonly vcpuPool: VcpuPool;
  private pages: IncomingPages | undefined;
  // Started while waiting too; with the kernel backend they serve faults and
  // the background push, the software backend's are served here.
  private readonly faultThread: FaultThread;
  private readonly bulkThread: FaultThread;
  /** Resolves once the first upgrade's code is warm (or the rehearsal gave up). */
  private readonly handshakeRehearsal: Promise<number>;
  private threadServes = false;
  private machineRef: Machine | undefined;
  /** The guest was started here (postcopy-run, or a resume that stood in for it). */
  private guestRunning = false;
  /** The source was told it may switch over: from then on it may have stopped the guest for us. */
  private readySent = false;
  /** Lost the source after 'ready' without its state: fails when the source has not come back by then. */
  private stateless: NodeJS.Timeout | undefined;
  private configuredMachine: (() => void) | undefined;
  private readonly configured = new Promise<void>((resolve) => (this.configuredMachine = resolve));
  private incoming: IncomingMigration | undefined;

  /** Shared with the listener, which checks every incoming message against it. */
  private constructor(
    readonly state: MigrationStateMachine,
    private readonly listener: MigrationListener,
    private readonly options: IncomingGuestOptions,
  ) {
    super();
    this.log = options.log.child({ module: 'migration', side: 'destination' });
    // One vCPU is the common guest; more start when the source says so.
    this.vcpuPool = VcpuPool.spawn(1, this.log);
    this.faultThread = new FaultThread(this.log);
    this.bulkThread = new FaultThread(this.log, 'bulk');
    this.state.onChange((_from, to) => this.emit('state', to));
    listener.onMigration((m) => this.accept(m));
    this.handshakeRehearsal = rehearseHandshake(this.log);
  }

  static async listen(options: IncomingGuestOptions): Promise<IncomingGuest> {
    const state = new MigrationStateMachine();
    let guest: IncomingGuest | undefined;
    const listener = await MigrationListener.listen({
      host: options.host,
      port: options.port,
      token: options.token,
      pageSize: PAGE_SIZE,
      state,
      // Also while waiting to tell a source that lost us before its state arrived that the guest never ran here.
      resumable: () => state.state === 'postcopy-paused' || guest?.stateless !== undefined,
      log: options.log,
    });
    guest = new IncomingGuest(state, listener, options);
    return guest;
  }

  /**
   * Resolves once the page threads and the handshake have rehearsed (or a
   * migration cut them short): a migration accepted earlier runs its first
   * faults through code still being compiled, on the cores the guest needs.
   */
  async ready(): Promise<void> {
    await Promise.all([this.faultThread.rehearsed(), this.bulkThread.rehearsed(), this.handshakeRehearsal]);
  }

  get url(): string {
    return `ws://${this.options.host}:${this.listener.port}`;
  }

  get machine(): Machine | undefined {
    return this.machineRef;
  }

  /** With a fault thread, its share is as of its last report (fetched when every page is present). */
  figures(): DestinationFigures {
    const p = this.pages;
    const t = this.threadServes ? this.faultThread.latestFigures : undefined;
    const b = this.threadServes ? this.bulkThread.latestFigures : undefined;
    const faults = t?.faults ?? p?.faults.figures;
    return {
      status: this.state.state,
      backend: this.uffd?.path ?? 'none',
      faults: faults?.faults ?? 0,
      postcopyRequests: faults?.requests ?? 0,
      placedPages: (p?.placer.figures.placedPages ?? 0) + (t?.placer.placedPages ?? 0) + (b?.placer.placedPages ?? 0),
      zeroPages: (p?.placer.figures.zeroPages ?? 0) + (t?.placer.zeroPages ?? 0) + (b?.placer.zeroPages ?? 0),
      duplicatePages: (p?.placer.figures.duplicatePages ?? 0) + (t?.placer.duplicatePages ?? 0) + (b?.placer.duplicatePages ?? 0),
      discardedPages: p?.placer.figures.discardedPages ?? 0,
      copyIoctls: (p?.placer.figures.copyIoctls ?? 0) + (t?.placer.copyIoctls ?? 0) + (b?.placer.copyIoctls ?? 0),
      blocktimeMs: t?.blocktimeMs ?? p?.faults.stats.blocktimeMs ?? 0,
      faultLatencyUs: t?.latencyUs ?? p?.faults.stats.summary() ?? { p50: 0, p90: 0, p99: 0, max: 0, count: 0 },
    };
  }

  /** Stops listening; the guest (if any) keeps running until close(). */
  /** No second source can connect; this guest's channels stay up. */
  stopListening(): void {
    this.listener.stopAccepting();
  }

  async close(): Promise<void> {
    clearTimeout(this.stateless);
    await this.handshakeRehearsal;
    await this.listener.close();
    await this.machineRef?.close();
    await this.vcpuPool.close();
    // First: the userfaultfd ends only when the page threads' descriptors are closed too.
    await Promise.all([this.faultThread.close(), this.bulkThread.close()]);
    this.uffd?.close();
    this.region?.release();
  }

  private accept(m: IncomingMigration): void {
    if (m.resume) {
      this.reconnected(m);
      return;
    }
    if (this.incoming) {
      this.log.warn({ session: m.session }, 'a second migration arrived while one is in progress; refused');
      m.channels.control.fail(new ProtocolMalformedError('this destination already receives a guest; start another destination'));
      return;
    }
    this.incoming = m;
    const { ramSize } = m.identity;
    try {
      const uffd = openUserfaultfd({ path: this.options.uffdPath, logger: this.log });
      this.uffd = uffd;
      const region = allocateRegion(ramSize, uffd.backend);
      this.region = region;
      // Registered before the first page can arrive: every page is placed by
      // the userfaultfd, so a vCPU can never see one half-written.
      uffd.register(region.address, region.length);
      // The source stops its vCPUs only after 'ready': worker start-up stays out of the downtime.
      const pool = this.vcpuPool;
      pool.provide(m.identity.vcpus, ramFromRegion(region).handle);
      // And only once the machine is built from the config the source sends first.
      void Promise.all([pool.loaded(), this.faultThread.loaded(), this.bulkThread.loaded(), this.configured]).then(() => {
        if (this.state.state !== 'setup' && this.state.state !== 'precopy-active') return;
        m.channels.control.send({ type: 'ready' });
        this.readySent = true;
      });
      const received = new PageBitmap(region.length / PAGE_SIZE);
      // The kernel backend's faults are served by their own thread; the software backend's on this one.
      if (uffd instanceof KernelUserfaultfd) {
        const sharedState = SharedMigrationState.mirror(this.state).buffer;
        for (const [thread, role] of [[this.faultThread, 'faults'], [this.bulkThread, 'bulk']] as const) {
          thread.serve({ role, uffd, regionAddress: region.address, regionLength: region.length, pageSize: PAGE_SIZE, received, state: this.state.state, sharedState });
          this.state.onChange((_from, to) => thread.setState(to));
          thread.onFailure((err) => this.fail(err));
        }
        this.threadServes = true;
      } else {
        void this.faultThread.close();
        void this.bulkThread.close();
      }
      const pages = new IncomingPages({
        uffd,
        region: placementRegion(region),
        pageSize: PAGE_SIZE,
        state: this.state,
        log: this.log,
        received,
        pageThreads: this.threadServes ? { faults: this.faultThread, bulk: this.bulkThread } : undefined,
      });
      this.pages = pages;
      pages.watch(uffd);
      uffd.on('error', (err) => this.fail(err));
      pages.onComplete(() => {
        const settled = this.threadServes ? Promise.all([this.faultThread.figures(), this.bulkThread.figures()]) : Promise.resolve();
        void settled.then(() => this.emit('completed', this.figures()));
      });
      this.attachChannels(m);
      this.log.info({ session: m.session, ramSize, vcpus: m.identity.vcpus, backend: uffd.path }, 'incoming migration');
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private attachChannels(m: IncomingMigration): void {
    const { channels } = m;
    const closeAll = (code: number, reason: string): void => {
      channels.control.close(code, reason);
      if (this.threadServes) {
        this.faultThread.closeChannel(code, reason);
        this.bulkThread.closeChannel(code, reason);
      } else {
        channels.bulk.close(code, reason);
        channels.urgent.close(code, reason);
      }
    };
    const lost = (kind: string, code: number, reason: string, error?: ProtocolError): void => {
      if (this.incoming !== m || this.stateless) return;
      const state = this.state.state;
      if (state === 'completed' || state === 'cancelled' || state === 'failed' || state === 'postcopy-paused') return;
      const why = `the source closed the ${kind} channel (${code}${reason ? `: ${reason}` : ''})`;
      // Broken after 'ready', before the state arrived: the source may have
      // stopped the guest and sent it, and then it comes back to resume. Only
      // this side knows the guest never ran here, so it waits to say so; the
      // source then runs the guest again itself. Broken is no close frame
      // (1006) or the source's own word that it lost the connection and is
      // reconnecting (1001, its other channels): which of the two arrives
      // first is a race between threads and sockets.
      const broken = code === 1006 || code === RECONNECTING_CLOSE_CODE;
      if ((state === 'setup' || state === 'precopy-active') && this.readySent && broken && !error) {
        this.pages!.detach();
        closeAll(RECONNECTING_CLOSE_CODE, 'connection lost before the guest state arrived');
        this.stateless = setTimeout(() => {
          this.stateless = undefined;
          this.fail(new MigrationFailedError(`${why} before the guest's state arrived, and the source did not come back within ${SOURCE_RETURN_MS / 1000} s`));
        }, SOURCE_RETURN_MS);
        this.log.warn({ reason: why, waitMs: SOURCE_RETURN_MS }, "the connection to the source broke before the guest's state arrived; waiting for the source to come back and learn that the guest never ran here");
        return;
      }
      if ((state !== 'postcopy-active' && state !== 'device') || error) {
        this.fail(error ?? new MigrationFailedError(`${why} while the migration was ${state}`));
        return;
      }
      // The guest runs here (or its state was taken, and the source, which
      // sent postcopy-run right behind it, no longer runs it) and some of its
      // pages are still there: wait for the source to reconnect (it retries
      // on its own) instead of losing them.
      this.state.moveTo('postcopy-paused');
      this.pages!.detach();
      closeAll(RECONNECTING_CLOSE_CODE, 'connection lost; waiting for the source to resume');
      this.log.warn({ reason: why }, 'postcopy paused: the connection to the source broke; vCPUs wait on missing pages until it reconnects');
    };
    // The page threads' channels report through attach() below.
    for (const channel of this.threadServes ? [channels.control] : [channels.control, channels.bulk, channels.urgent]) {
      channel.onClose((code, reason, error) => lost(channel.kind, code, reason, error));
    }
    // A page thread's channel reports to this connection even when it closes after a reconnect.
    this.pages!.attach(
      channels,
      (c) => void this.onControl(c).catch((err: Error) => this.fail(err)),
      (kind, code, reason, error) => lost(kind, code, reason, error),
    ).catch((err: Error) => this.fail(err));
  }

  /**
   * The source came back after postcopy-paused: tell it what arrived, then it
   * resumes. Back after losing us before its state arrived: tell it the guest
   * never ran here.
   */
  private reconnected(m: IncomingMigration): void {
    if (this.stateless && this.incoming?.session === m.session) {
      clearTimeout(this.stateless);
      this.stateless = undefined;
      this.incoming = m;
      // Sent on the new connection: before any state was acked, the source resumes the guest itself.
      this.fail(new MigrationFailedError("the connection to the source broke before the guest's state arrived here: the guest never ran on this destination and resumes on the source"));
      return;
    }
    if (!this.incoming || this.incoming.session !== m.session || this.state.state !== 'postcopy-paused') {
      m.channels.control.fail(new ProtocolStateError(`cannot resume migration ${m.session} here: this destination is ${this.state.state}`));
      return;
    }
    this.incoming = m;
    this.attachChannels(m);
    m.channels.control.send(this.pages!.recoverMessage());
    this.log.info({ session: m.session, present: this.pages!.placer.received.count }, 'the source reconnected; resuming postcopy');
  }

  private async onControl(m: ControlMessage): Promise<void> {
    const control = this.incoming!.channels.control;
    switch (m.type) {
      case 'precopy-begin':
        this.state.moveTo('precopy-active');
        break;
      case 'machine-config':
        this.machineRef = this.buildMachine(m.config);
        this.machineRef.prepare();
        this.configuredMachine?.();
        break;
      case 'machine-state':
        try {
          this.restoreMachine(m.state);
        } catch (err) {
          // Now, not a microtask later: postcopy-run, sent right behind, must find this migration failed.
          this.fail(err as Error);
          return;
        }
        this.state.moveTo('device');
        if (this.stateless) {
          // Read after a page channel's reconnecting close was taken for a
          // break before the state (seen once in CI): the state did arrive,
          // so this is a break between the state and postcopy-run, and the
          // source, reconnecting, resumes the guest here. Left waiting as
          // stateless in 'device', this side refused its hello for good.
          clearTimeout(this.stateless);
          this.stateless = undefined;
          this.state.moveTo('postcopy-paused');
          this.log.warn("the guest's state was read after the connection broke; waiting for the source to resume it here");
          break;
        }
        control.send({ type: 'ack', of: 'machine-state' });
        break;
      case 'postcopy-run':
        await this.startGuest();
        control.send({ type: 'ack', of: 'postcopy-run' });
        this.announceStarted();
        break;
      case 'resume': {
        // The connection broke between machine-state and postcopy-run: resuming is the go.
        const starting = !this.guestRunning;
        if (starting) await this.startGuest();
        else this.state.moveTo('postcopy-active');
        control.send({ type: 'ack', of: 'resume' });
        if (starting) this.announceStarted();
        this.pages!.resumed();
        break;
      }
      case 'cancel':
        this.log.warn({ reason: m.reason }, 'the source cancelled the migration');
        this.state.moveTo('cancelled');
        this.emit('failed', new MigrationCancelledError(`the source cancelled the migration: ${m.reason}; nothing ran here`));
        break;
      case 'error':
        this.fail(new MigrationFailedError(`the source failed the migration: ${m.code}: ${m.message}`));
        break;
      default:
        this.log.warn({ type: m.type }, 'unexpected control message from the source; ignored');
    }
  }

  private async startGuest(): Promise<void> {
    this.guestRunning = true;
    this.machineRef!.setStopAt(this.options.stopAt);
    // First: a hart runs as soon as its worker has it, and its first fault's page may come back on urgent before start() resolves.
    this.state.moveTo('postcopy-active');
    await this.machineRef!.start();
  }

  /** After the source was told: completion may be declared from now on. */
  private announceStarted(): void {
    this.emit('started', this.machineRef!);
    this.pages!.postcopyStarted();
  }

  /** The machine as the source describes it and the handshake sized it; its state comes at the switchover. */
  private buildMachine(raw: unknown): Machine {
    const c = checkMachineConfig(raw);
    const { ramSize, vcpus } = this.incoming!.identity;
    return Machine.create({
      image: c.image,
      ramSize,
      vcpus,
      guestArgs: c.guestArgs ?? undefined,
      disk: this.options.disk ?? c.disk ?? undefined,
      region: this.region,
      vcpuPool: this.vcpuPool,
      logger: this.log,
    });
  }

  private restoreMachine(raw: unknown): void {
    if (!this.machineRef) throw new ProtocolStateError('machine-state arrived before machine-config; the source must describe the machine first');
    this.machineRef.restore(decodeMachineState(checkTransferredState(raw).machine));
  }

  private fail(err: Error): void {
    const failure = err instanceof PostcopyError ? err : new MigrationFailedError(`incoming migration failed: ${err.message}`, err);
    this.log.error({ err: failure }, 'incoming migration failed');
    // The source learns why; before the state is acked this also tells it the guest never ran here, so it resumes it.
    const control = this.incoming?.channels.control;
    if (control?.open && this.state.state !== 'failed') control.send({ type: 'error', code: failure.code, message: failure.message });
    if (this.state.canMoveTo('failed')) this.state.moveTo('failed');
    this.emit('failed', failure);
  }
}

// Both payloads are opaque to the protocol layer: checked here, where they are used.
function payload(raw: unknown, message: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null) throw malformed(message, 'the payload is not a map');
  return raw as Record<string, unknown>;
}

function malformed(message: string, what: string): ProtocolMalformedError {
  return new ProtocolMalformedError(`${message}: ${what}; the source and destination must run the same postcopy version`);
}

function checkMachineConfig(raw: unknown): MachineConfigPayload {
  const c = payload(raw, 'machine-config');
  if (!(c.image instanceof Uint8Array)) throw malformed('machine-config', 'field "image" must be binary (the guest ELF)');
  if (c.guestArgs !== null && typeof c.guestArgs !== 'string') throw malformed('machine-config', 'field "guestArgs" must be a string or nil');
  if (c.disk !== null && typeof c.disk !== 'string') throw malformed('machine-config', 'field "disk" must be a string or nil');
  return c as unknown as MachineConfigPayload;
}

function checkTransferredState(raw: unknown): TransferredState {
  const t = payload(raw, 'machine-state');
  if (!(t.machine instanceof Uint8Array)) throw malformed('machine-state', 'field "machine" must be binary (encoded machine state)');
  return t as unknown as TransferredState;
}

// The guest machine as the main thread sees it: RAM, shared device state, one
// worker per vCPU, and the operations migration is built from — run to or
// pause at exact per-hart times, fetch-and-clear the dirty log, save and
// restore every vCPU and device, hash the whole state. Lifecycle:
//
//   const m = Machine.create({ image, ramSize, vcpus, guestArgs, disk, region | backend })
//   m.boot()              load the image and parameters into RAM (or m.restore(state))
//   await m.start()       workers up, harts running (to their stop-at times if set)
//   await m.runUntil(N)   every hart at time N (or halted, or the guest finished)
//   await m.pause()       exact per-hart times; then save(), stateHash(), resume()
//   await m.close()       workers gone, disk closed, RAM released if the machine allocated it
//
// The main thread reads RAM only in boot() and stateHash(): on a migration
// destination, pages may be missing and a read here would block the very
// thread that must place them.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { logger, type Logger } from '../log.ts';
import { startWorker } from '../worker.ts';
import { VCPU_WORKER_ENTRY, type VcpuInit, type VcpuPool, type VcpuPrepare, type VcpuStart } from './vcpu-pool.ts';
import type { GuestRegion } from '../uffd/region.ts';
import type { HartState } from './cpu/hart.ts';
import { BlockRegisters } from './devices/block-device.ts';
import { ClintRegisters } from './devices/clint.ts';
import { FinisherRegisters, type FinisherState } from './devices/finisher.ts';
import { UartRegisters } from './devices/uart.ts';
import { DirtyLog } from './dirty-log.ts';
import { closeDiskImage, openDiskImage, type DiskImage } from './disk-image.ts';
import { loadElf, parseElf, type GuestImage } from './elf.ts';
import { GuestConfigError, GuestLifecycleError, GuestStateError, GuestVcpuError } from './errors.ts';
import { RAM_BASE, validateRamSize, validateVcpus, type PageIndex, type RamOffset } from './memory-map.ts';
import { encodeParams, paramsAddress, validateGuestArgs } from './params.ts';
import { allocateRam, ramFromRegion, type GuestRam, type RamBackend } from './ram.ts';
import { encodeMachineState, validateMachineState, MACHINE_STATE_VERSION, type MachineState } from './state.ts';
import { COMMAND_PAUSE, COMMAND_QUIT, COMMAND_RUN, VcpuControl, type IdleReason, type WorkerReport } from './vcpu-control.ts';
import type { HartStart, SharedMachineBuffers, VcpuWorkerData } from './vcpu-worker.ts';

export interface MachineOptions {
  /** ELF32 image bytes (validated here) or an already parsed image. */
  image: Uint8Array | GuestImage;
  ramSize: number;
  vcpus?: number;
  /** "key=value ..." for the parameter block; undefined: no block, a1 = 0. */
  guestArgs?: string;
  /** Disk image path (created sparse when absent); undefined: capacity 0. */
  disk?: string;
  diskSize?: number;
  /** RAM to run over (e.g. a region the destination registered); otherwise allocated with `backend`. */
  region?: GuestRegion;
  backend?: RamBackend;
  /** Workers already started (a migration destination's): start() hands them their harts. */
  vcpuPool?: VcpuPool;
  /** Ticks per run slice: the longest pause() waits for a running vCPU. */
  slice?: number;
  /** Console bytes kept for consoleText(); older bytes are dropped beyond this. */
  consoleLimit?: number;
  logger?: Logger;
}

export interface HartReport {
  hart: number;
  reason: IdleReason;
  time: number;
}

interface HartStatus {
  seq: number;
  reason: IdleReason;
  time: number;
  state: HartState;
}

type Phase = 'created' | 'loaded' | 'running' | 'stopped' | 'closed';

// A pause waits for the running slice. A memory-bound guest (memwork over
// 1 GiB) runs nearer 100 than 1000 MIPS, where 200k ticks cost the switchover
// ~2 ms; the check between slices stays negligible at 50k.
const DEFAULT_SLICE = 50_000;
const DEFAULT_CONSOLE_LIMIT = 16 * 1024 * 1024;

export class Machine extends EventEmitter<{ console: [Uint8Array]; finished: [FinisherState]; failed: [GuestVcpuError] }> {
  readonly image: GuestImage;
  readonly ramSize: number;
  readonly vcpus: number;
  readonly guestArgs: string | undefined;
  readonly ram: GuestRam;
  readonly dirtyLog: DirtyLog;
  readonly disk: DiskImage | null;

  private readonly control = new VcpuControl();
  private readonly clint = new ClintRegisters();
  private readonly uart = new UartRegisters();
  private readonly finisher = new FinisherRegisters();
  private readonly block = new BlockRegisters();
  private readonly ownsRam: boolean;
  private readonly slice: number;
  private readonly pool: VcpuPool | undefined;
  private readonly log: Logger;
  private readonly consoleLimit: number;

  private phase: Phase = 'created';
  /** Pooled workers that built their hart in prepare() and wait for its state. */
  private readonly prepared: (Worker | undefined)[] = [];
  private starts: HartStart[] | undefined;
  private workers: Worker[] = [];
  private statuses: (HartStatus | undefined)[];
  private waiters: { seqs: number[]; resolve: () => void; reject: (e: Error) => void }[] = [];
  private failure: GuestVcpuError | undefined;
  private consoleChunks: Uint8Array[] = [];
  private consoleKept = 0;
  private consoleBytes = 0;

  private constructor(options: MachineOptions, image: GuestImage, ram: GuestRam, ownsRam: boolean, disk: DiskImage | null) {
    super();
    this.image = image;
    this.ramSize = options.ramSize;
    this.vcpus = options.vcpus ?? 1;
    this.guestArgs = options.guestArgs;
    this.ram = ram;
    this.ownsRam = ownsRam;
    this.disk = disk;
    this.dirtyLog = new DirtyLog(this.ramSize);
    this.slice = options.slice ?? DEFAULT_SLICE;
    this.pool = options.vcpuPool;
    this.consoleLimit = options.consoleLimit ?? DEFAULT_CONSOLE_LIMIT;
    this.log = (options.logger ?? logger()).child({ module: 'guest' });
    this.statuses = new Array<HartStatus | undefined>(this.vcpus).fill(undefined);
  }

  /** Validates everything, then allocates (or adopts) RAM and opens the disk. Touches no RAM. */
  static create(options: MachineOptions): Machine {
    validateRamSize(options.ramSize);
    validateVcpus(options.vcpus ?? 1);
    if (options.guestArgs !== undefined) validateGuestArgs(options.guestArgs);
    if (options.slice !== undefined && (!Number.isSafeInteger(options.slice) || options.slice < 1)) {
      throw new GuestConfigError(`slice ${options.slice} must be a positive integer number of ticks`);
    }
    const image = options.image instanceof Uint8Array ? parseElf(options.image, options.ramSize) : options.image;
    if (options.region && options.region.length !== options.ramSize) {
      throw new GuestConfigError(`region is ${options.region.length} bytes but the machine has ${options.ramSize} bytes of RAM`);
    }
    const disk = options.disk === undefined ? null : openDiskImage(options.disk, options.diskSize);
    const ram = options.region ? ramFromRegion(options.region) : allocateRam(options.ramSize, options.backend ?? 'shared');
    return new Machine(options, image, ram, options.region === undefined, disk);
  }

  /** SHA-256 of the image file: lets migration check both sides run the same guest. */
  get imageHash(): string {
    return createHash('sha256').update(this.image.bytes).digest('hex');
  }

  /** Loads the image and the parameter block into RAM; every hart will start at the entry. */
  boot(): void {
    this.requirePhase('created', 'boot');
    const ram = this.ram.bytes();
    loadElf(this.image, ram);
    for (const s of this.image.segments) this.dirtyLog.markRange((s.address - RAM_BASE) as RamOffset, s.memorySize);
    let a1 = 0;
    if (this.guestArgs !== undefined) {
      const block = encodeParams(this.guestArgs, this.ramSize, this.vcpus);
      a1 = paramsAddress(this.ramSize);
      ram.set(block, a1 - RAM_BASE);
      this.dirtyLog.markRange((a1 - RAM_BASE) as RamOffset, block.length);
    }
    this.starts = Array.from({ length: this.vcpus }, () => ({ kind: 'boot' as const, entry: this.image.entry, a1 }));
    this.phase = 'loaded';
  }

  /** Takes over a saved state (RAM must already hold the matching contents, or be on its way). */
  restore(state: MachineState): void {
    this.requirePhase('created', 'restore');
    validateMachineState(state);
    if (state.ramSize !== this.ramSize) throw new GuestStateError('ramSize', `is ${state.ramSize}, this machine has ${this.ramSize}`);
    if (state.vcpus !== this.vcpus) throw new GuestStateError('vcpus', `is ${state.vcpus}, this machine has ${this.vcpus}`);
    this.clint.restore(state.clint);
    this.uart.restore(state.uart);
    this.block.restore(state.blockDevice);
    this.finisher.restore(state.finisher);
    this.consoleBytes = state.consoleOffset;
    this.starts = state.harts.map((h) => ({ kind: 'restore' as const, state: h }));
    this.phase = 'loaded';
  }

  /**
   * A migration destination, before the state arrives: its pooled workers
   * build their harts and devices now, so start() only hands them state.
   */
  prepare(): void {
    this.requirePhase('created', 'prepare');
    const shared = this.sharedBuffers();
    for (let hart = 0; hart < this.vcpus; hart++) {
      const worker = this.pool?.take(hart, this.ram.handle);
      if (!worker) continue;
      worker.postMessage({ type: 'prepare', data: { hart, ram: this.ram.handle, ramSize: this.ramSize, shared, disk: this.disk, slice: this.slice } } satisfies VcpuPrepare);
      this.prepared[hart] = worker;
    }
  }

  /** Starts one worker per vCPU; harts run unless `paused` (to their stop-at times, if set). */
  async start(options: { paused?: boolean } = {}): Promise<void> {
    if (this.phase === 'created') this.boot();
    this.requirePhase('loaded', 'start');
    this.phase = 'running';
    const shared = this.sharedBuffers();
    // Set before the workers exist: each hart starts the moment its worker is
    // ready, without a round trip through this thread (it may be busy placing pages).
    if (!options.paused) for (let h = 0; h < this.vcpus; h++) this.control.command(h, COMMAND_RUN);
    const ready = this.starts!.map((start, hart) => {
      const data: VcpuWorkerData = { hart, ram: this.ram.handle, ramSize: this.ramSize, shared, disk: this.disk, start, slice: this.slice };
      const prepared = this.prepared[hart];
      const pooled = prepared ?? this.pool?.take(hart, this.ram.handle);
      const worker = pooled ?? startWorker(VCPU_WORKER_ENTRY, data, { name: `vcpu-${hart}` });
      if (prepared) {
        prepared.postMessage({ type: 'start', start } satisfies VcpuStart);
        // It sleeps on its doorbell, not on its event loop (vcpu-worker.ts): the state is posted, wake it.
        this.control.ring(hart);
      }
      else if (pooled) pooled.postMessage({ type: 'init', data } satisfies VcpuInit);
      this.workers.push(worker);
      return new Promise<void>((resolve, reject) => {
        worker.on('message', (report: WorkerReport) => {
          if (report.type === 'ready') resolve();
          else this.onReport(report);
        });
        worker.on('error', (err) => {
          const failure = new GuestVcpuError(hart, `worker crashed: ${err.message}`, { cause: err });
          reject(failure);
          this.fail(failure);
        });
        worker.on('exit', (code) => {
          const failure = new GuestVcpuError(hart, `worker exited (code ${code}) before it was ready`);
          reject(failure);
          if (this.phase === 'running' && code !== 0) this.fail(new GuestVcpuError(hart, `worker exited unexpectedly with code ${code}`));
        });
      });
    });
    await Promise.all(ready);
  }

  private sharedBuffers(): SharedMachineBuffers {
    return {
      control: this.control.control,
      stopAt: this.control.stopAtBuffer,
      dirty: this.dirtyLog.buffer,
      clint: this.clint.buffer,
      uart: this.uart.buffer,
      finisher: this.finisher.buffer,
      block: this.block.buffer,
    };
  }

  /** Sets where `hart` (or every hart) stops next; takes effect at once while running. */
  setStopAt(time: number, hart?: number): void {
    if (!Number.isSafeInteger(time) && time !== Infinity) throw new GuestConfigError(`stop-at time ${time} must be a safe integer or Infinity`);
    for (const h of hart === undefined ? this.hartIds() : [hart]) {
      this.control.command(h, this.control.commandOf(h) === COMMAND_RUN ? COMMAND_RUN : COMMAND_PAUSE, time);
    }
  }

  /** Runs every hart to exactly `time` (or its own entry of an array); resolves once all stopped. */
  async runUntil(time: number | readonly number[]): Promise<HartReport[]> {
    if (this.phase === 'created' || this.phase === 'loaded') await this.start({ paused: true });
    this.requirePhase('running', 'runUntil');
    const seqs = this.hartIds().map((h) => this.control.command(h, COMMAND_RUN, typeof time === 'number' ? time : time[h]!));
    await this.waitFor(seqs);
    return this.reports();
  }

  /** Stops every hart between two instructions; resolves with each hart's exact time. */
  async pause(): Promise<number[]> {
    this.requirePhase('running', 'pause');
    const seqs = this.hartIds().map((h) => this.control.command(h, COMMAND_PAUSE));
    await this.waitFor(seqs);
    return this.reports().map((r) => r.time);
  }

  /** Lets paused harts run on (to their stop-at times, if set). */
  resume(): void {
    this.requirePhase('running', 'resume');
    for (const h of this.hartIds()) this.control.command(h, COMMAND_RUN);
  }

  /**
   * Auto-converge's throttle: every hart sleeps `percent` (0-99) of its
   * running time from its next slice on; 0 lets it run freely again.
   */
  setThrottle(percent: number): void {
    if (!Number.isInteger(percent) || percent < 0 || percent > 99) throw new GuestConfigError(`a vCPU throttle is 0 to 99 percent (got ${percent})`);
    for (const h of this.hartIds()) this.control.setThrottle(h, percent);
  }

  /** The throttle in percent, 0 when the harts run freely. */
  get throttle(): number {
    return this.control.throttleOf(0);
  }

  /** Each hart's last reported stop: why and at what time. */
  reports(): HartReport[] {
    return this.hartIds().map((hart) => {
      const s = this.statuses[hart];
      if (!s) throw new GuestLifecycleError(`vCPU ${hart} has not stopped yet`);
      return { hart, reason: s.reason, time: s.time };
    });
  }

  /** Pages written (by stores or DMA) since the last call, ascending; clears them. */
  fetchAndClearDirty(): PageIndex[] {
    return this.dirtyLog.fetchAndClear();
  }

  /** fetchAndClearDirty as [start, length, ...] runs. */
  fetchAndClearDirtyRuns(): number[] {
    return this.dirtyLog.fetchAndClearRuns();
  }

  /** Every vCPU and device, as of the last stop. Every hart must be stopped since its last command. */
  save(): MachineState {
    const harts = this.hartIds().map((h) => {
      const s = this.statuses[h];
      if (this.phase !== 'running' || !s || s.seq !== this.control.seqOf(h)) {
        throw new GuestLifecycleError(`save() needs every vCPU stopped: await pause() or runUntil() first (vCPU ${h} is not)`);
      }
      return s.state;
    });
    return {
      version: MACHINE_STATE_VERSION,
      ramSize: this.ramSize,
      vcpus: this.vcpus,
      harts,
      clint: this.clint.save(),
      uart: this.uart.save(),
      blockDevice: this.block.save(),
      finisher: this.finisher.save(),
      consoleOffset: this.consoleBytes,
    };
  }

  /** SHA-256 over the canonical state and all of RAM. Only when stopped and every page is present. */
  stateHash(): string {
    const hash = createHash('sha256');
    hash.update('postcopy machine state\0');
    hash.update(encodeMachineState(this.save()));
    hash.update(this.ram.bytes());
    return hash.digest('hex');
  }

  /** How the guest finished (test finisher), or undefined while it has not. */
  get exit(): FinisherState | undefined {
    const f = this.finisher.save();
    return f.status === 'running' ? undefined : f;
  }

  /** Total console bytes the guest has written, including before a restore. */
  get consoleOffset(): number {
    return this.consoleBytes;
  }

  /** Console output seen by this machine (not what came before a restore). */
  consoleText(): string {
    return Buffer.concat(this.consoleChunks).toString('latin1');
  }

  /** Ends the workers (harts keep their state in the last reports); RAM and disk stay. */
  async stop(): Promise<void> {
    if (this.phase !== 'running') return;
    this.phase = 'stopped';
    const exits = this.workers.map((w) => new Promise<void>((resolve) => w.once('exit', () => resolve())));
    for (const h of this.hartIds()) this.control.command(h, COMMAND_QUIT);
    await Promise.all(exits);
    this.workers = [];
  }

  /** stop(), then closes the disk and releases RAM the machine allocated itself. */
  async close(): Promise<void> {
    if (this.phase === 'closed') return;
    await this.stop();
    // Prepared for a switchover that never came: they were taken from the pool, so they are ours to end.
    await Promise.all(this.prepared.filter((w): w is Worker => w !== undefined && !this.workers.includes(w)).map((w) => w.terminate()));
    this.phase = 'closed';
    if (this.disk) closeDiskImage(this.disk);
    if (this.ownsRam) this.ram.release();
    this.rejectWaiters(new GuestLifecycleError('the machine was closed'));
  }

  private hartIds(): number[] {
    return [...Array(this.vcpus).keys()];
  }

  private requirePhase(phase: Phase, operation: string): void {
    if (this.failure) throw this.failure;
    if (this.phase !== phase) throw new GuestLifecycleError(`${operation}() is not possible while the machine is ${this.phase}`);
  }

  private onReport(report: WorkerReport): void {
    switch (report.type) {
      case 'console': {
        this.consoleBytes += report.bytes.length;
        this.consoleChunks.push(report.bytes);
        this.consoleKept += report.bytes.length;
        while (this.consoleKept > this.consoleLimit && this.consoleChunks.length > 1) this.consoleKept -= this.consoleChunks.shift()!.length;
        this.emit('console', report.bytes);
        break;
      }
      case 'idle':
        this.statuses[report.hart] = { seq: report.seq, reason: report.reason, time: report.time, state: report.state };
        this.checkWaiters();
        break;
      case 'finished':
        if (report.finisher.status === 'reset') this.log.info({ hart: report.hart }, 'guest asked the test finisher for a reset; treating it as a clean exit');
        else this.log.debug({ hart: report.hart, ...report.finisher }, 'guest finished');
        this.emit('finished', report.finisher);
        break;
      case 'failed':
        this.fail(new GuestVcpuError(report.hart, report.message, { cause: report.stack }));
        break;
      case 'ready':
      case 'waiting':
        break;
    }
  }

  private waitFor(seqs: number[]): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiters.push({ seqs, resolve, reject });
      this.checkWaiters();
    });
  }

  private checkWaiters(): void {
    this.waiters = this.waiters.filter((w) => {
      const done = w.seqs.every((seq, h) => (this.statuses[h]?.seq ?? -1) >= seq);
      if (done) w.resolve();
      return !done;
    });
  }

  private fail(failure: GuestVcpuError): void {
    if (this.failure) return;
    this.failure = failure;
    this.log.error({ err: failure }, 'vCPU failed');
    this.rejectWaiters(failure);
    if (this.listenerCount('failed') > 0) this.emit('failed', failure);
  }

  private rejectWaiters(err: Error): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
  }
}

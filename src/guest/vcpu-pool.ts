// vCPU worker threads started before the machine they will run exists. A
// worker's start-up (a new isolate, loading and compiling the vCPU code) costs
// hundreds of milliseconds; a migration destination starts its workers while
// it waits for a source, gives them guest RAM once the source has said how
// much (each attaches it, which loads the native addon in its thread, and
// makes its code cache), and the switchover itself only hands each waiting
// worker its hart (see Machine.start).
import type { Worker } from 'node:worker_threads';
import type { Logger } from '../log.ts';
import { startWorker } from '../worker.ts';
import { sameRam, type RamHandle } from './ram.ts';
import type { WorkerReport } from './vcpu-control.ts';
import type { VcpuWorkerData } from './vcpu-worker.ts';

export const VCPU_WORKER_ENTRY = new URL('./vcpu-worker.ts', import.meta.url);

/** A pooled worker's workerData: it waits for a VcpuRam, then a VcpuInit. */
export interface VcpuPooled {
  pooled: true;
}

/** The RAM a pooled worker will run over. */
export interface VcpuRam {
  type: 'ram';
  ram: RamHandle;
}

/** What a waiting worker receives: everything it would otherwise get as workerData. */
export interface VcpuInit {
  type: 'init';
  data: VcpuWorkerData;
}

/** Or in two steps (a migration destination): its devices and hart first, built while the source still runs the guest... */
export interface VcpuPrepare {
  type: 'prepare';
  data: Omit<VcpuWorkerData, 'start'>;
}

/** ...then, at the switchover, the hart's state. */
export interface VcpuStart {
  type: 'start';
  start: VcpuWorkerData['start'];
}

interface Slot {
  worker: Worker;
  exited: boolean;
  /** Resolves once the worker attached the RAM it was given and waits for its hart. */
  waiting: Promise<void>;
}

export class VcpuPool {
  private slots: (Slot | undefined)[];
  private ram: RamHandle | undefined;

  private constructor(
    count: number,
    private readonly log: Logger,
  ) {
    this.slots = Array.from({ length: count }, (_, hart) => this.spawn(hart));
  }

  /** Starts `count` workers that load the vCPU code and wait for their RAM. */
  static spawn(count: number, log: Logger): VcpuPool {
    return new VcpuPool(count, log);
  }

  /** Hands `ram` to `count` workers (starting more if needed, ending the rest); once per pool. */
  provide(count: number, ram: RamHandle): void {
    if (this.ram) throw new Error('this vCPU pool already has its RAM');
    this.ram = ram;
    for (const slot of this.slots.slice(count)) if (slot && !slot.exited) void slot.worker.terminate();
    this.slots = Array.from({ length: count }, (_, hart) => this.slots[hart] ?? this.spawn(hart));
    for (const slot of this.slots) slot?.worker.postMessage({ type: 'ram', ram } satisfies VcpuRam);
  }

  /** Resolves once every worker has attached its RAM and waits (for the 'ready' a destination sends). */
  async loaded(): Promise<void> {
    await Promise.all(this.slots.map((s) => s?.waiting));
  }

  /** The waiting worker for `hart` over `ram`, handed over once; undefined if there is none, it died, or it has other RAM. */
  take(hart: number, ram: RamHandle): Worker | undefined {
    if (!this.ram || !sameRam(ram, this.ram)) return undefined;
    const slot = this.slots[hart];
    this.slots[hart] = undefined;
    if (!slot || slot.exited) return undefined;
    slot.worker.ref();
    return slot.worker;
  }

  /** Ends the workers nobody took. */
  async close(): Promise<void> {
    const left = this.slots.filter((s): s is Slot => s !== undefined && !s.exited);
    this.slots = [];
    await Promise.all(left.map((s) => s.worker.terminate()));
  }

  private spawn(hart: number): Slot {
    const worker = startWorker(VCPU_WORKER_ENTRY, { pooled: true } satisfies VcpuPooled, { name: `vcpu-${hart}` });
    // A waiting worker must not keep a destination that gave up from exiting.
    worker.unref();
    const slot: Slot = { worker, exited: false, waiting: Promise.resolve() };
    slot.waiting = new Promise<void>((resolve) => {
      const onMessage = (report: WorkerReport): void => {
        if (report.type !== 'waiting') return;
        worker.off('message', onMessage);
        resolve();
      };
      worker.on('message', onMessage);
      worker.once('exit', (code) => {
        slot.exited = true;
        resolve();
        if (this.slots[hart] === slot) this.log.warn({ hart, code }, 'a waiting vCPU worker exited; the machine will start a new one');
      });
      worker.once('error', (err) => this.log.warn({ hart, err }, 'a waiting vCPU worker failed'));
    });
    return slot;
  }
}

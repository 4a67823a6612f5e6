// vCPU worker threads started before the machine they will run exists. A
// worker's start-up (a new isolate, loading and compiling the vCPU code) costs
// hundreds of milliseconds; a migration destination pays it while pages and
// state are still on their way, so the switchover itself only hands each
// waiting worker its hart (see Machine.start). Each waiting worker has
// already attached guest RAM, which loads the native addon in its thread.
import type { Worker } from 'node:worker_threads';
import type { Logger } from '../log.ts';
import { startWorker } from '../worker.ts';
import { sameRam, type RamHandle } from './ram.ts';
import type { WorkerReport } from './vcpu-control.ts';
import type { VcpuWorkerData } from './vcpu-worker.ts';

export const VCPU_WORKER_ENTRY = new URL('./vcpu-worker.ts', import.meta.url);

/** A pooled worker's workerData: the RAM it will run over. */
export interface VcpuPreload {
  preload: RamHandle;
}

/** What a waiting worker receives: everything it would otherwise get as workerData. */
export interface VcpuInit {
  type: 'init';
  data: VcpuWorkerData;
}

interface Waiting {
  worker: Worker;
  exited: boolean;
  waiting: Promise<void>;
}

export class VcpuPool {
  private readonly slots: (Waiting | undefined)[];

  private constructor(
    count: number,
    private readonly ram: RamHandle,
    private readonly log: Logger,
  ) {
    this.slots = Array.from({ length: count }, (_, hart) => this.spawn(hart));
  }

  /** Starts `count` workers that load the vCPU code and attach `ram`, then wait for their hart. */
  static spawn(count: number, ram: RamHandle, log: Logger): VcpuPool {
    return new VcpuPool(count, ram, log);
  }

  /** Resolves once every worker has loaded its code and waits (for tests and logs). */
  async loaded(): Promise<void> {
    await Promise.all(this.slots.map((s) => s?.waiting));
  }

  /** The waiting worker for `hart` over `ram`, handed over once; undefined if there is none, it died, or it attached other RAM. */
  take(hart: number, ram: RamHandle): Worker | undefined {
    if (!sameRam(ram, this.ram)) return undefined;
    const slot = this.slots[hart];
    this.slots[hart] = undefined;
    if (!slot || slot.exited) return undefined;
    return slot.worker;
  }

  /** Ends the workers nobody took. */
  async close(): Promise<void> {
    const left = this.slots.filter((s): s is Waiting => s !== undefined && !s.exited);
    this.slots.fill(undefined);
    await Promise.all(left.map((s) => s.worker.terminate()));
  }

  private spawn(hart: number): Waiting {
    const worker = startWorker(VCPU_WORKER_ENTRY, { preload: this.ram } satisfies VcpuPreload, { name: `vcpu-${hart}` });
    const slot: Waiting = { worker, exited: false, waiting: Promise.resolve() };
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

// One vCPU: a worker thread that owns a Hart and its own device objects (over
// the machine's shared device state) and runs guest code in slices, looking
// at its control word between slices. Started by Machine through startWorker,
// either with its VcpuWorkerData or, from a VcpuPool, with nothing: it then
// waits for its RAM, attaches it and makes its code cache, says it is
// waiting, and takes the rest of its data from the next message.
import { parentPort, receiveMessageOnPort } from 'node:worker_threads';
import type { AttachedRegion } from '../uffd/attach.ts';
import { workerPayload } from '../worker.ts';
import { CodeCache } from './cpu/code-cache.ts';
import { Hart, type HartState } from './cpu/hart.ts';
import { ensurePresent } from './cpu/ram.ts';
import { BlockDevice, BlockRegisters } from './devices/block-device.ts';
import { Clint, ClintRegisters } from './devices/clint.ts';
import { Finisher, FinisherRegisters } from './devices/finisher.ts';
import { Uart, UartRegisters } from './devices/uart.ts';
import type { DiskImage } from './disk-image.ts';
import { DirtyLog } from './dirty-log.ts';
import { MmioBus } from './mmio-bus.ts';
import { PAGE_SIZE, RAM_BASE, type RamOffset } from './memory-map.ts';
import { attachRam, type RamHandle } from './ram.ts';
import type { VcpuInit, VcpuPooled, VcpuPrepare, VcpuRam, VcpuStart } from './vcpu-pool.ts';
import { COMMAND_PAUSE, COMMAND_QUIT, VcpuControl, type IdleReason, type WorkerReport } from './vcpu-control.ts';

export interface SharedMachineBuffers {
  control: SharedArrayBuffer;
  stopAt: SharedArrayBuffer;
  dirty: SharedArrayBuffer;
  clint: SharedArrayBuffer;
  uart: SharedArrayBuffer;
  finisher: SharedArrayBuffer;
  block: SharedArrayBuffer;
}

export type HartStart = { kind: 'boot'; entry: number; a1: number } | { kind: 'restore'; state: HartState };

export interface VcpuWorkerData {
  hart: number;
  ram: RamHandle;
  ramSize: number;
  shared: SharedMachineBuffers;
  disk: DiskImage | null;
  start: HartStart;
  /** Ticks per slice: the longest a pause or stop waits for this vCPU. */
  slice: number;
}

const CONSOLE_FLUSH_BYTES = 4096;

// Throttled, a vCPU runs this long, then sleeps what makes its share of
// sleep the throttle's percent (QEMU's cpu-throttle sleeps in 10 ms units;
// shorter here, so a slowed guest still looks alive on its console).
const THROTTLE_RUN_MS = 2;
// A slice is timed by the wall clock, and on a loaded host the thread may
// have waited for a core through most of it; counted in full, that wait made
// the sleep after it as long again, and a throttled guest sat out whole
// precopy rounds. A slice counts for at most this much running.
const THROTTLE_SLICE_MAX_MS = 2;

const port = parentPort!;
const post = (report: WorkerReport): void => port.postMessage(report);

type Run = (start: HartStart) => void;

function guarded(hart: number, body: () => void): void {
  try {
    body();
  } catch (err) {
    post({ type: 'failed', hart, message: (err as Error).message ?? String(err), stack: (err as Error).stack });
  }
}

const given = workerPayload<VcpuWorkerData | VcpuPooled>();
if ('pooled' in given) {
  port.once('message', (m: VcpuRam) => {
    const ram = attachRam(m.ram);
    const code = new CodeCache(ram.buffer.byteLength);
    port.once('message', (m: VcpuInit | VcpuPrepare) => {
      if (m.type === 'init') {
        guarded(m.data.hart, () => buildVcpu(m.data, ram, code)(m.data.start));
        return;
      }
      let run: Run | undefined;
      guarded(m.data.hart, () => (run = buildVcpu(m.data, ram, code)));
      // A build that failed was reported already; the start is then ignored.
      if (run) awaitStart(m.data, run);
    });
    post({ type: 'waiting' });
  });
} else {
  guarded(given.hart, () => buildVcpu(given, attachRam(given.ram))(given.start));
}

// A migration destination's prepared hart starts inside its downtime: it
// sleeps on its doorbell, which start() rings right after posting the state,
// and takes the message off the port itself. A futex wake-up reaches it in a
// fraction of the time a message takes through this thread's event loop.
function awaitStart(d: Omit<VcpuWorkerData, 'start'>, run: Run): void {
  const control = new VcpuControl(d.shared.control, d.shared.stopAt);
  for (;;) {
    const bell = control.doorbell(d.hart);
    const received = receiveMessageOnPort(port);
    if (received) {
      guarded(d.hart, () => run((received.message as VcpuStart).start));
      return;
    }
    control.waitDoorbell(d.hart, bell);
  }
}

/** Builds the hart and its devices; the returned function gives the hart its start and runs it until told to quit. */
function buildVcpu(d: Omit<VcpuWorkerData, 'start'>, ram: AttachedRegion, code?: CodeCache): Run {
  const control = new VcpuControl(d.shared.control, d.shared.stopAt);
  const dirty = new DirtyLog(d.ramSize, d.shared.dirty);
  const clintRegs = new ClintRegisters(d.shared.clint);
  const finisherRegs = new FinisherRegisters(d.shared.finisher);
  const ramBytes = new Uint8Array(ram.buffer, 0, d.ramSize);

  let consoleBytes: number[] = [];
  const flushConsole = (): void => {
    if (consoleBytes.length === 0) return;
    post({ type: 'console', hart: d.hart, bytes: Uint8Array.from(consoleBytes) });
    consoleBytes = [];
  };

  // The hart is created after its devices but they need it (time, code
  // invalidation, stop): they reach it through this late-bound reference.
  let hart: Hart | undefined;
  const devices = [
    new Uart(new UartRegisters(d.shared.uart), (byte) => {
      consoleBytes.push(byte);
      if (consoleBytes.length >= CONSOLE_FLUSH_BYTES) flushConsole();
    }),
    new Finisher(finisherRegs, (finisher) => {
      hart!.requestStop();
      post({ type: 'finished', hart: d.hart, finisher });
    }),
    new Clint(clintRegs, d.hart, { time: () => hart!.time, wake: (target) => control.ring(target) }),
    new BlockDevice(new BlockRegisters(d.shared.block), d.hart, d.disk, {
      ram: ramBytes,
      beforeDma: (offset, length) => {
        if (!ram.gate) return;
        for (let at = offset - (offset % PAGE_SIZE); at < offset + length; at += PAGE_SIZE) ensurePresent(ram.gate, at, true);
      },
      afterRamWrite: (offset: RamOffset, length) => {
        dirty.markRange(offset, length);
        hart!.invalidateCode(offset, length);
      },
    }),
  ];
  const bus = new MmioBus(devices);
  // CLINT compare values are 64-bit; the hart compares against a safe integer.
  const maxCompare = BigInt(Number.MAX_SAFE_INTEGER);
  hart = new Hart(d.hart, {
    ram: ram.buffer,
    ramBase: RAM_BASE,
    ramSize: d.ramSize,
    dirty: dirty.bytes,
    gate: ram.gate,
    mmioLoad: (addr, size) => bus.load(addr, size),
    mmioStore: (addr, size, value) => bus.store(addr, size, value),
    timerCompare: () => {
      const cmp = clintRegs.timecmp(d.hart);
      return cmp > maxCompare ? Number.MAX_SAFE_INTEGER : Number(cmp);
    },
    softwareInterruptPending: () => clintRegs.msip(d.hart) !== 0,
  }, { code });
  const built = hart;
  return (start) => {
    if (start.kind === 'boot') {
      built.pc = start.entry;
      built.x[10] = d.hart;
      built.x[11] = start.a1 | 0;
    } else {
      built.restore(start.state);
    }
    post({ type: 'ready', hart: d.hart });
    runLoop(d, built, control, finisherRegs, ram, flushConsole);
  };
}

function runLoop(d: Omit<VcpuWorkerData, 'start'>, hart: Hart, control: VcpuControl, finisherRegs: FinisherRegisters, ram: AttachedRegion, flushConsole: () => void): void {
  let ranMs = 0;
  let reportedSeq = -1;
  let reportedReason: IdleReason | undefined;
  let halted = false;
  for (;;) {
    const bell = control.doorbell(d.hart);
    const seq = control.seqOf(d.hart);
    const command = control.commandOf(d.hart);
    if (command === COMMAND_QUIT) break;
    // A kernel-backed vCPU woken by a closing userfaultfd has read zeros for a missing page: stop, loudly.
    if (ram.aborted()) throw new Error('the userfaultfd serving guest RAM was closed while pages were missing');
    const stopAt = control.stopAt[d.hart]!;
    let idle: IdleReason | undefined;
    if (command === COMMAND_PAUSE) idle = 'paused';
    else if (finisherRegs.save().status !== 'running') idle = 'finished';
    else if (hart.time >= stopAt) idle = 'stop-at';
    else {
      // Only a throttled vCPU times its slices: the rest never read the clock.
      const throttle = control.throttleOf(d.hart);
      const began = throttle > 0 ? performance.now() : 0;
      const outcome = hart.run(Math.min(d.slice, stopAt - hart.time));
      flushConsole();
      ranMs = throttle > 0 ? ranMs + Math.min(performance.now() - began, THROTTLE_SLICE_MAX_MS) : 0;
      if (ranMs >= THROTTLE_RUN_MS) {
        // A command rings the doorbell and cuts the sleep short.
        control.waitDoorbell(d.hart, bell, (ranMs * throttle) / (100 - throttle));
        ranMs = 0;
      }
      // A hart in wfi with nothing that could wake it sleeps until its doorbell rings (msip).
      if (outcome === 'wfi-halt' && !halted) halted = true;
      else if (outcome !== 'wfi-halt') halted = false;
      if (!halted) continue;
      idle = 'halted';
    }
    if (seq !== reportedSeq || idle !== reportedReason) {
      flushConsole();
      post({ type: 'idle', hart: d.hart, seq, reason: idle, time: hart.time, state: hart.save() });
      reportedSeq = seq;
      reportedReason = idle;
    }
    control.waitDoorbell(d.hart, bell);
  }
  flushConsole();
}

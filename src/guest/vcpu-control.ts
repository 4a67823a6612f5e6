// How the main thread drives vCPU workers: a SharedArrayBuffer per machine,
// because a worker busy running guest code never returns to its event loop to
// read messages, but does read a word between slices. Workers answer with
// messages (below), which arrive in order after any console output they sent.
//
//   control: Int32 words, 4 per hart
//   +------------+---------------------------------------------------------+
//   | DOORBELL   | bumped on every command and wake; workers Atomics.wait  |
//   | COMMAND    | RUN / PAUSE / QUIT                                      |
//   | SEQ        | number of the latest command, echoed in reports         |
//   | THROTTLE   | percent of the time to sleep (auto-converge), 0-99      |
//   +------------+---------------------------------------------------------+
//   stopAt: Float64 per hart: run until time == stopAt (Infinity: no limit)
import type { HartState } from './cpu/hart.ts';
import type { FinisherState } from './devices/finisher.ts';
import { MAX_VCPUS } from './memory-map.ts';

export const COMMAND_RUN = 1;
export const COMMAND_PAUSE = 2;
export const COMMAND_QUIT = 3;
export type Command = typeof COMMAND_RUN | typeof COMMAND_PAUSE | typeof COMMAND_QUIT;

const STRIDE = 4;
const DOORBELL = 0;
const COMMAND = 1;
const SEQ = 2;
const THROTTLE = 3;

export class VcpuControl {
  static readonly BYTES = MAX_VCPUS * STRIDE * 4;
  private readonly words: Int32Array;
  readonly stopAt: Float64Array;

  constructor(
    readonly control: SharedArrayBuffer = new SharedArrayBuffer(VcpuControl.BYTES),
    readonly stopAtBuffer: SharedArrayBuffer = new SharedArrayBuffer(MAX_VCPUS * 8),
  ) {
    this.words = new Int32Array(control);
    this.stopAt = new Float64Array(stopAtBuffer);
    if (Atomics.load(this.words, COMMAND) === 0) {
      for (let h = 0; h < MAX_VCPUS; h++) {
        this.stopAt[h] = Infinity;
        Atomics.store(this.words, h * STRIDE + COMMAND, COMMAND_PAUSE);
      }
    }
  }

  /** Main thread: give `hart` a command; stopAt is written before the doorbell so the worker sees both. */
  command(hart: number, command: Command, stopAt?: number): number {
    if (stopAt !== undefined) this.stopAt[hart] = stopAt;
    const at = hart * STRIDE;
    Atomics.store(this.words, at + COMMAND, command);
    const seq = Atomics.add(this.words, at + SEQ, 1) + 1;
    this.ring(hart);
    return seq;
  }

  /** Wakes `hart`'s worker without a new command (a software interrupt for a hart in wfi). */
  ring(hart: number): void {
    Atomics.add(this.words, hart * STRIDE + DOORBELL, 1);
    Atomics.notify(this.words, hart * STRIDE + DOORBELL);
  }

  /** Main thread: `hart` sleeps `percent` of its running time from its next slice on (0: not at all). */
  setThrottle(hart: number, percent: number): void {
    Atomics.store(this.words, hart * STRIDE + THROTTLE, percent);
  }

  throttleOf(hart: number): number {
    return Atomics.load(this.words, hart * STRIDE + THROTTLE);
  }

  doorbell(hart: number): number {
    return Atomics.load(this.words, hart * STRIDE + DOORBELL);
  }

  commandOf(hart: number): Command {
    return Atomics.load(this.words, hart * STRIDE + COMMAND) as Command;
  }

  seqOf(hart: number): number {
    return Atomics.load(this.words, hart * STRIDE + SEQ);
  }

  /** Worker: sleep until the doorbell moves from `seen`, or at most `timeoutMs`. */
  waitDoorbell(hart: number, seen: number, timeoutMs?: number): void {
    Atomics.wait(this.words, hart * STRIDE + DOORBELL, seen, timeoutMs);
  }
}

/** Why a worker is not running guest code. */
export type IdleReason = 'paused' | 'stop-at' | 'halted' | 'finished';

export type WorkerReport =
  | { type: 'waiting' }
  | { type: 'ready'; hart: number }
  | { type: 'console'; hart: number; bytes: Uint8Array }
  | { type: 'idle'; hart: number; seq: number; reason: IdleReason; time: number; state: HartState }
  | { type: 'finished'; hart: number; finisher: FinisherState }
  | { type: 'failed'; hart: number; message: string; stack: string | undefined };

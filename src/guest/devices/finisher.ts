// SiFive test finisher: the guest powers the machine off by writing 0x5555
// (pass, exit 0), (code << 16) | 0x3333 (fail with code) or 0x7777 (reset,
// which this machine treats as a clean exit and logs). The first write wins;
// the writing hart stops at once, the machine stops the others.
import type { AccessSize, MmioDevice } from './mmio.ts';
import { FINISHER_BASE, FINISHER_SIZE } from '../memory-map.ts';

export type FinisherStatus = 'running' | 'pass' | 'fail' | 'reset';

export interface FinisherState {
  status: FinisherStatus;
  /** Exit code: 0 for pass and reset, the guest's code for fail. */
  code: number;
}

const STATUSES: FinisherStatus[] = ['running', 'pass', 'fail', 'reset'];

/** Whether and how the guest finished, shared by every hart's worker. */
export class FinisherRegisters {
  static readonly BYTES = 8;
  private readonly words: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(FinisherRegisters.BYTES)) {
    this.words = new Int32Array(buffer);
  }

  /** Records the outcome unless one is already recorded; true if this call recorded it. */
  finish(status: Exclude<FinisherStatus, 'running'>, code: number): boolean {
    if (Atomics.compareExchange(this.words, 0, 0, STATUSES.indexOf(status)) !== 0) return false;
    Atomics.store(this.words, 1, code);
    return true;
  }

  save(): FinisherState {
    return { status: STATUSES[Atomics.load(this.words, 0)]!, code: Atomics.load(this.words, 1) };
  }

  restore(state: FinisherState): void {
    Atomics.store(this.words, 0, STATUSES.indexOf(state.status));
    Atomics.store(this.words, 1, state.code);
  }
}

export class Finisher implements MmioDevice {
  readonly base = FINISHER_BASE;
  readonly size = FINISHER_SIZE;

  constructor(
    private readonly regs: FinisherRegisters,
    private readonly onFinish: (state: FinisherState) => void,
  ) {}

  load(): number {
    return 0;
  }

  store(offset: number, size: AccessSize, value: number): boolean {
    if (offset !== 0 || size === 1) return true;
    const kind = value & 0xffff;
    const outcome: FinisherState | undefined =
      kind === 0x5555 ? { status: 'pass', code: 0 }
      : kind === 0x3333 ? { status: 'fail', code: value >>> 16 }
      : kind === 0x7777 ? { status: 'reset', code: 0 }
      : undefined;
    if (outcome && this.regs.finish(outcome.status as Exclude<FinisherStatus, 'running'>, outcome.code)) this.onFinish(outcome);
    return true;
  }
}

// ns16550a UART: bytes written to THR go to the console; LSR always reports an
// empty transmitter (THRE|TEMT), which is all a polling driver waits for. The
// other registers read back what was written, so drivers that configure the
// line (baud divisor, FIFO, modem control) work unchanged. No receive path.
import type { AccessSize, MmioDevice } from './mmio.ts';
import { UART_BASE, UART_SIZE } from '../memory-map.ts';

export interface UartState {
  ier: number;
  lcr: number;
  mcr: number;
  scr: number;
  dll: number;
  dlm: number;
  fcr: number;
}

const FIELDS = ['ier', 'lcr', 'mcr', 'scr', 'dll', 'dlm', 'fcr'] as const;
const LSR_THRE_TEMT = 0x60;
const LCR_DLAB = 0x80;

/** The UART's register file, shared by every hart's worker. */
export class UartRegisters {
  static readonly BYTES = FIELDS.length * 4;
  private readonly regs: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(UartRegisters.BYTES)) {
    this.regs = new Int32Array(buffer);
  }

  get(field: (typeof FIELDS)[number]): number {
    return Atomics.load(this.regs, FIELDS.indexOf(field));
  }

  set(field: (typeof FIELDS)[number], value: number): void {
    Atomics.store(this.regs, FIELDS.indexOf(field), value & 0xff);
  }

  save(): UartState {
    const s = {} as UartState;
    for (const f of FIELDS) s[f] = this.get(f);
    return s;
  }

  restore(state: UartState): void {
    for (const f of FIELDS) this.set(f, state[f]);
  }
}

export class Uart implements MmioDevice {
  readonly base = UART_BASE;
  readonly size = UART_SIZE;

  constructor(
    private readonly regs: UartRegisters,
    private readonly transmit: (byte: number) => void,
  ) {}

  load(offset: number, _size: AccessSize): number | undefined {
    const dlab = (this.regs.get('lcr') & LCR_DLAB) !== 0;
    switch (offset) {
      case 0: return dlab ? this.regs.get('dll') : 0;
      case 1: return dlab ? this.regs.get('dlm') : this.regs.get('ier');
      // IIR: no interrupt pending; the top bits say whether FIFOs are enabled.
      case 2: return (this.regs.get('fcr') & 1) !== 0 ? 0xc1 : 0x01;
      case 3: return this.regs.get('lcr');
      case 4: return this.regs.get('mcr');
      case 5: return LSR_THRE_TEMT;
      case 6: return 0;
      case 7: return this.regs.get('scr');
      default: return 0;
    }
  }

  store(offset: number, _size: AccessSize, value: number): boolean {
    const dlab = (this.regs.get('lcr') & LCR_DLAB) !== 0;
    switch (offset) {
      case 0: if (dlab) this.regs.set('dll', value); else this.transmit(value & 0xff); break;
      case 1: this.regs.set(dlab ? 'dlm' : 'ier', value); break;
      case 2: this.regs.set('fcr', value); break;
      case 3: this.regs.set('lcr', value); break;
      case 4: this.regs.set('mcr', value); break;
      case 7: this.regs.set('scr', value); break;
      default: break;
    }
    return true;
  }
}

// The project's own block device (QEMU has none at this address). The guest
// programs SECTOR, ADDR (guest physical), LEN and rings COMMAND; the transfer
// runs synchronously on the vCPU thread as a real read/write syscall whose
// buffer *is* guest RAM. On a migration destination that syscall takes a
// kernel-mode fault on a missing page: /dev/userfaultfd serves it, a
// UFFD_USER_MODE_ONLY uffd makes it fail with EFAULT, which the guest sees as
// STATUS = 1 with ERRNO = 14. Registers are per hart, so harts never race.
//
//   +0x00 MAGIC    ro  0x4b4c4250 ("PBLK")
//   +0x04 SECTOR   rw  first sector
//   +0x08 ADDR     rw  guest physical address of the buffer
//   +0x0C LEN      rw  bytes: a multiple of 512, at most 1 MiB
//   +0x10 COMMAND  wo  1 = disk -> RAM, 2 = RAM -> disk (the doorbell)
//   +0x14 STATUS   ro  0 ok, 1 I/O error (see ERRNO), 2 bad request
//   +0x18 CAPACITY ro  sectors
//   +0x1C ERRNO    ro  errno of the failed syscall
import fs from 'node:fs';
import type { AccessSize, MmioDevice } from './mmio.ts';
import { mergeRegister, registerSlice } from './mmio.ts';
import { BLOCK_BASE, BLOCK_SIZE, MAX_VCPUS, guestAddress, toRamOffset, type RamOffset } from '../memory-map.ts';
import { SECTOR_SIZE, type DiskImage } from '../disk-image.ts';

export const BLOCK_MAGIC = 0x4b4c4250;
export const MAX_TRANSFER = 1024 * 1024;
export const STATUS_OK = 0;
export const STATUS_IO_ERROR = 1;
export const STATUS_BAD_REQUEST = 2;
const COMMAND_READ = 1;
const COMMAND_WRITE = 2;
const EIO = 5;

export interface BlockHartState {
  sector: number;
  addr: number;
  len: number;
  status: number;
  errno: number;
}

export interface BlockDeviceState {
  harts: BlockHartState[];
}

const FIELDS = ['sector', 'addr', 'len', 'status', 'errno'] as const;
const STRIDE = 8;

/** Every hart's register set, in shared memory so the machine can save them while paused. */
export class BlockRegisters {
  static readonly BYTES = MAX_VCPUS * STRIDE * 4;
  private readonly words: Uint32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(BlockRegisters.BYTES)) {
    this.words = new Uint32Array(buffer);
  }

  get(hart: number, field: (typeof FIELDS)[number]): number {
    return Atomics.load(this.words, hart * STRIDE + FIELDS.indexOf(field));
  }

  set(hart: number, field: (typeof FIELDS)[number], value: number): void {
    Atomics.store(this.words, hart * STRIDE + FIELDS.indexOf(field), value >>> 0);
  }

  save(): BlockDeviceState {
    const harts: BlockHartState[] = [];
    for (let h = 0; h < MAX_VCPUS; h++) {
      const s = {} as BlockHartState;
      for (const f of FIELDS) s[f] = this.get(h, f);
      harts.push(s);
    }
    return { harts };
  }

  restore(state: BlockDeviceState): void {
    state.harts.forEach((s, h) => {
      for (const f of FIELDS) this.set(h, f, s[f]);
    });
  }
}

export interface BlockDmaHooks {
  /** Guest RAM as this thread sees it. */
  ram: Uint8Array;
  /** Called before the syscall touches [offset, offset+length): the software backend waits for missing pages here. */
  beforeDma(offset: RamOffset, length: number): void;
  /** Called after a disk -> RAM transfer changed [offset, offset+length): dirty log and code cache. */
  afterRamWrite(offset: RamOffset, length: number): void;
}

/** One hart's view of the block device. */
export class BlockDevice implements MmioDevice {
  readonly base = BLOCK_BASE;
  readonly size = BLOCK_SIZE;

  constructor(
    private readonly regs: BlockRegisters,
    private readonly hart: number,
    private readonly disk: DiskImage | null,
    private readonly dma: BlockDmaHooks,
  ) {}

  private get capacity(): number {
    return this.disk?.capacity ?? 0;
  }

  load(offset: number, size: AccessSize): number | undefined {
    const word = offset & ~3;
    const value =
      word === 0x00 ? BLOCK_MAGIC
      : word === 0x04 ? this.regs.get(this.hart, 'sector')
      : word === 0x08 ? this.regs.get(this.hart, 'addr')
      : word === 0x0c ? this.regs.get(this.hart, 'len')
      : word === 0x14 ? this.regs.get(this.hart, 'status')
      : word === 0x18 ? this.capacity
      : word === 0x1c ? this.regs.get(this.hart, 'errno')
      : 0;
    return registerSlice(value, offset, size);
  }

  store(offset: number, size: AccessSize, value: number): boolean {
    const word = offset & ~3;
    const field = word === 0x04 ? 'sector' : word === 0x08 ? 'addr' : word === 0x0c ? 'len' : undefined;
    if (field) this.regs.set(this.hart, field, mergeRegister(this.regs.get(this.hart, field), offset, size, value));
    else if (word === 0x10) this.ring(mergeRegister(0, offset, size, value));
    return true;
  }

  private ring(command: number): void {
    const sector = this.regs.get(this.hart, 'sector');
    const len = this.regs.get(this.hart, 'len');
    const offset = toRamOffset(guestAddress(this.regs.get(this.hart, 'addr')), len, this.dma.ram.length);
    const valid =
      (command === COMMAND_READ || command === COMMAND_WRITE) &&
      len > 0 && len <= MAX_TRANSFER && len % SECTOR_SIZE === 0 &&
      sector + len / SECTOR_SIZE <= this.capacity &&
      offset !== undefined;
    if (!valid || !this.disk || offset === undefined) {
      this.complete(STATUS_BAD_REQUEST, 0);
      return;
    }
    this.dma.beforeDma(offset, len);
    const position = sector * SECTOR_SIZE;
    let errno = 0;
    try {
      for (let done = 0; done < len; ) {
        const buffer = this.dma.ram.subarray(offset + done, offset + len);
        const n = command === COMMAND_READ
          ? fs.readSync(this.disk.fd, buffer, 0, buffer.length, position + done)
          : fs.writeSync(this.disk.fd, buffer, 0, buffer.length, position + done);
        if (n === 0) {
          errno = EIO;
          break;
        }
        done += n;
      }
    } catch (err) {
      const raw = (err as { errno?: unknown }).errno;
      errno = typeof raw === 'number' && raw !== 0 ? Math.abs(raw) : EIO;
    }
    // Even a failed read may have changed some bytes: log the whole range.
    if (command === COMMAND_READ) this.dma.afterRamWrite(offset, len);
    this.complete(errno === 0 ? STATUS_OK : STATUS_IO_ERROR, errno);
  }

  private complete(status: number, errno: number): void {
    this.regs.set(this.hart, 'errno', errno);
    this.regs.set(this.hart, 'status', status);
  }
}

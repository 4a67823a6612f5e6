// Zero-page detection for the page server. Where RAM is a mapping of our own
// (the kernel backend's), the addon scans a whole run of pages in one call
// (zeroRun in memory.c): the push checks every page it sends, and a call per
// page was a third of the push thread's JavaScript. Elsewhere, Buffer#compare
// of each page against a zero page: 0.5 µs per 4 KiB zero page here, against
// 1.1 µs for a Uint32Array loop and 0.6 µs for BigUint64Array. Never compare
// Float64Array words: -0 equals 0, so a page holding 0x8000000000000000
// would pass as zero. Pages are named by offsets into RAM, not passed as
// views of it: a view per page made each check 160 ns instead of 95 (node,
// a data page whose first non-zero byte is where memwork's are) and was
// garbage.
import { loadNative, type NativeAddon } from '../uffd/native.ts';

export class ZeroPageCheck {
  private readonly ram: Buffer;
  private readonly zero: Buffer;
  /** The addon and where it reads RAM, when it may. */
  private readonly native: { addon: NativeAddon; address: number } | undefined;

  /** `address`: where `ram` is mapped, when the addon may read it there. */
  constructor(
    ram: Uint8Array,
    private readonly pageSize: number,
    address?: number,
  ) {
    this.ram = Buffer.from(ram.buffer, ram.byteOffset, ram.byteLength);
    this.zero = Buffer.alloc(pageSize);
    this.native = address === undefined ? undefined : { addon: loadNative(), address };
  }

  /**
   * How many pages from `start` are, like it, all zero (as a negative count,
   * at most `maxZero`) or not (at most `maxData`). The caller keeps the run
   * inside RAM; a run that leaves it throws here, because the addon would
   * read past the mapping (a SIGSEGV, or a zero run over whatever lies next).
   */
  run(start: number, maxData: number, maxZero: number): number {
    const pages = this.ram.length / this.pageSize;
    if (!(start >= 0 && start + maxData <= pages && start + maxZero <= pages)) {
      throw new RangeError(`zero-page run from page ${start} (at most ${maxData} data, ${maxZero} zero) leaves RAM of ${pages} pages`);
    }
    const native = this.native;
    if (native) return native.addon.zeroRun(native.address + start * this.pageSize, this.pageSize, maxData, maxZero);
    const zero = this.compare(start);
    const max = zero ? maxZero : maxData;
    let n = 1;
    while (n < max && this.compare(start + n) === zero) n++;
    return zero ? -n : n;
  }

  private compare(page: number): boolean {
    const at = page * this.pageSize;
    return this.zero.compare(this.ram, at, at + this.pageSize) === 0;
  }
}

// Zero-page detection for the page server: memcmp of a page of guest RAM
// against a zero page. Buffer#compare is 0.5 µs per 4 KiB zero page here,
// against 1.1 µs for a Uint32Array loop and 0.6 µs for BigUint64Array. Never
// compare Float64Array words: -0 equals 0, so a page holding
// 0x8000000000000000 would pass as zero. The page is named by offsets into
// RAM, not passed as a view of it: the push checks every page it sends, and
// a view per page made each check 160 ns instead of 95 (node, a data page
// whose first non-zero byte is where memwork's are) and was garbage.
export class ZeroPageCheck {
  private readonly ram: Buffer;
  private readonly zero: Buffer;

  constructor(
    ram: Uint8Array,
    private readonly pageSize: number,
  ) {
    this.ram = Buffer.from(ram.buffer, ram.byteOffset, ram.byteLength);
    this.zero = Buffer.alloc(pageSize);
  }

  isZero(page: number): boolean {
    const at = page * this.pageSize;
    return this.zero.compare(this.ram, at, at + this.pageSize) === 0;
  }
}

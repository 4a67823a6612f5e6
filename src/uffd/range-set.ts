// The set of address ranges a userfaultfd has registered: REGISTER adds,
// UNREGISTER may cut a hole in the middle of a range, as the kernel allows.
export interface AddressRange {
  readonly address: number;
  readonly length: number;
}

export class RangeSet {
  private list: AddressRange[] = [];

  add(address: number, length: number): void {
    this.remove(address, length);
    this.list.push({ address, length });
    this.list.sort((a, b) => a.address - b.address);
  }

  remove(address: number, length: number): void {
    const end = address + length;
    const kept: AddressRange[] = [];
    for (const r of this.list) {
      const rEnd = r.address + r.length;
      if (rEnd <= address || r.address >= end) {
        kept.push(r);
        continue;
      }
      if (r.address < address) kept.push({ address: r.address, length: address - r.address });
      if (rEnd > end) kept.push({ address: end, length: rEnd - end });
    }
    this.list = kept;
  }

  /** Whether every byte of [address, address+length) is in the set. */
  covers(address: number, length: number): boolean {
    let at = address;
    const end = address + length;
    for (const r of this.list) {
      if (r.address <= at && r.address + r.length > at) at = r.address + r.length;
      if (at >= end) return true;
    }
    return false;
  }

  ranges(): readonly AddressRange[] {
    return this.list;
  }

  clear(): void {
    this.list = [];
  }
}

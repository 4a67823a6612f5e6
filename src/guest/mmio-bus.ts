// Routes a hart's non-RAM accesses to the device whose window holds the
// address; anything else is unmapped and becomes an access fault.
import type { AccessSize, MmioDevice } from './devices/mmio.ts';

export class MmioBus {
  constructor(private readonly devices: readonly MmioDevice[]) {}

  private find(addr: number): MmioDevice | undefined {
    for (const d of this.devices) if (addr >= d.base && addr < d.base + d.size) return d;
    return undefined;
  }

  load(addr: number, size: AccessSize): number | undefined {
    const device = this.find(addr);
    return device?.load(addr - device.base, size);
  }

  store(addr: number, size: AccessSize, value: number): boolean {
    const device = this.find(addr);
    return device ? device.store(addr - device.base, size, value) : false;
  }
}

// Guest RAM as the machine holds it: a userfaultfd region from src/uffd
// (kernel mmap or the software backend), or a plain SharedArrayBuffer for
// machines that never migrate in (tests, `postcopy run --uffd none`).
// The main thread gets a view; workers attach through a cloneable handle.
import { attachRegion, type AttachedRegion } from '../uffd/attach.ts';
import { allocateRegion, type GuestRegion, type RegionHandle } from '../uffd/region.ts';

export type RamBackend = 'kernel' | 'sim' | 'shared';

export type RamHandle = { kind: 'shared'; buffer: SharedArrayBuffer } | { kind: 'region'; handle: RegionHandle };

export interface GuestRam {
  readonly backend: RamBackend;
  readonly length: number;
  readonly handle: RamHandle;
  /** The region, when RAM is one (migration registers it with a userfaultfd). */
  readonly region: GuestRegion | undefined;
  /** Main-thread view. Only read pages known to be present (see DESIGN.md). */
  bytes(): Uint8Array;
  release(): void;
}

export function ramFromRegion(region: GuestRegion): GuestRam {
  return {
    backend: region.backend,
    length: region.length,
    handle: { kind: 'region', handle: region.handle },
    region,
    bytes: () => region.bytes(),
    release: () => region.release(),
  };
}

export function allocateRam(length: number, backend: RamBackend): GuestRam {
  if (backend !== 'shared') return ramFromRegion(allocateRegion(length, backend));
  const buffer = new SharedArrayBuffer(length);
  return {
    backend,
    length,
    handle: { kind: 'shared', buffer },
    region: undefined,
    bytes: () => new Uint8Array(buffer),
    release: () => undefined,
  };
}

/** In a vCPU worker: RAM for the hart, zero-copy, with the software backend's page gate. */
export function attachRam(handle: RamHandle): AttachedRegion {
  if (handle.kind === 'shared') return { buffer: handle.buffer, gate: null, aborted: () => false };
  return attachRegion(handle.handle);
}

/** Whether two handles reach the same RAM (each region has its own status buffer). */
export function sameRam(a: RamHandle, b: RamHandle): boolean {
  if (a.kind === 'shared') return b.kind === 'shared' && a.buffer === b.buffer;
  return b.kind === 'region' && a.handle.status === b.handle.status;
}

// Guest RAM as the machine holds it: a userfaultfd region from src/uffd
// (kernel mmap or the software backend), or a plain SharedArrayBuffer for
// machines that never migrate in (tests, `postcopy run --uffd none`).
// The main thread gets a view; workers attach through a cloneable handle.
import { allocateRegion, type GuestRegion, type RegionHandle } from '../uffd/region.ts';
import type { PageGate } from './cpu/hart.ts';

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

export interface AttachedRam {
  buffer: ArrayBuffer | SharedArrayBuffer;
  gate: PageGate | null;
  aborted(): boolean;
}

interface AttachModule {
  attachRegion(handle: RegionHandle): AttachedRam;
}

/** In a vCPU worker: RAM for the hart, zero-copy. */
export async function attachRam(handle: RamHandle): Promise<AttachedRam> {
  if (handle.kind === 'shared') return { buffer: handle.buffer, gate: null, aborted: () => false };
  const attach = (await import(new URL('../uffd/attach.ts', import.meta.url).href)) as AttachModule;
  return attach.attachRegion(handle.handle);
}

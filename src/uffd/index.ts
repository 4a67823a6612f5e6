// The userfaultfd layer's public face: regions, vCPU attachment, the one
// Userfaultfd interface and how to open it, the access probe, typed errors.
export { allocateRegion, type Backend, type GuestRegion, type RegionHandle } from './region.ts';
export { attachRegion, type AttachedRegion, type PageGate } from './attach.ts';
export { openUserfaultfd, openPath, DEFAULT_DEVICE, type OpenOptions } from './open.ts';
export { diagnose, probePath, probeAccessPaths, type DoctorReport, type PathReport } from './probe.ts';
export * from './userfaultfd.ts';
export * from './errors.ts';
export { PAGE_SIZE } from './pages.ts';

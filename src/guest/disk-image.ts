// The block device's backing file: opened (or created sparse) once by the
// machine; vCPU workers share the descriptor, since threads share the fd table.
import fs from 'node:fs';
import { errnoOf } from '../errors.ts';
import { GuestDiskError } from './errors.ts';

export const SECTOR_SIZE = 512;
export const DEFAULT_DISK_SIZE = 64 * 1024 * 1024;

export interface DiskImage {
  readonly path: string;
  readonly fd: number;
  /** In sectors; the file's size rounded down to whole sectors. */
  readonly capacity: number;
}

/** Opens `path` read-write, creating a sparse file of `createSize` bytes when absent. */
export function openDiskImage(path: string, createSize = DEFAULT_DISK_SIZE): DiskImage {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  } catch (err) {
    throw new GuestDiskError(`cannot open disk image ${path}: ${(err as Error).message}`, { errno: errnoOf(err), syscall: 'open', cause: err });
  }
  const size = fs.fstatSync(fd).size;
  if (size === 0) fs.ftruncateSync(fd, createSize);
  const bytes = size === 0 ? createSize : size;
  const capacity = Math.min(Math.floor(bytes / SECTOR_SIZE), 0xffff_ffff);
  return { path, fd, capacity };
}

export function closeDiskImage(disk: DiskImage): void {
  fs.closeSync(disk.fd);
}

// Where `--guest NAME|PATH.elf` points: a built-in program's committed image
// (src/guest/programs/images/NAME.elf) or an ELF file path.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GuestImageError } from './errors.ts';

export const GUEST_PROGRAMS = ['memwork', 'life', 'diskio', 'selftest'] as const;
export type GuestProgram = (typeof GUEST_PROGRAMS)[number];

export const IMAGES_DIR = fileURLToPath(new URL('./programs/images/', import.meta.url));

export function resolveGuestImage(nameOrPath: string): string {
  if ((GUEST_PROGRAMS as readonly string[]).includes(nameOrPath)) return `${IMAGES_DIR}${nameOrPath}.elf`;
  if (fs.existsSync(nameOrPath)) return nameOrPath;
  throw new GuestImageError(`guest "${nameOrPath}" is neither a built-in program (${GUEST_PROGRAMS.join(', ')}) nor an existing ELF file`);
}

export function readGuestImage(nameOrPath: string): Uint8Array {
  return fs.readFileSync(resolveGuestImage(nameOrPath));
}

// The committed guest images are what their sources build to, byte for byte.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GUEST_PROGRAMS, IMAGES_DIR } from '../../src/guest/guest-images.ts';
import { missingTool } from './helpers/tools.ts';

const compilerMissing = missingTool('riscv64-unknown-elf-gcc');
if (compilerMissing) console.warn(`guest image rebuild check skipped: ${compilerMissing}`);

describe.skipIf(compilerMissing !== undefined)('committed guest images', () => {
  it('match a fresh reproducible build of their sources', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-images-'));
    try {
      execFileSync(fileURLToPath(new URL('../../scripts/build-guests.sh', import.meta.url)), [out], { stdio: ['ignore', 'ignore', 'pipe'] });
      for (const program of GUEST_PROGRAMS) {
        const built = fs.readFileSync(path.join(out, `${program}.elf`));
        const committed = fs.readFileSync(path.join(IMAGES_DIR, `${program}.elf`));
        expect(built.equals(committed), `${program}.elf differs from its sources: run scripts/build-guests.sh and commit the images`).toBe(true);
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});

import { describe, expect, it } from 'vitest';
import { readGuestImage } from '../../src/guest/guest-images.ts';
import { parseElf } from '../../src/guest/elf.ts';
import { GuestImageError } from '../../src/guest/errors.ts';
import { buildElf, code, finishPass } from './helpers/tiny-guest.ts';

const RAM = 16 * 1024 * 1024;
const good = { segments: [{ address: 0x8000_0000, data: code(finishPass()) }] };

function refusal(bytes: Uint8Array): GuestImageError {
  try {
    parseElf(bytes, RAM);
  } catch (err) {
    expect(err).toBeInstanceOf(GuestImageError);
    expect((err as GuestImageError).code).toBe('GUEST_ERR_IMAGE');
    return err as GuestImageError;
  }
  throw new Error('image was accepted');
}

describe('guest images', () => {
  it('accepts the committed programs and a hand-built image', () => {
    for (const name of ['memwork', 'life', 'diskio', 'selftest']) {
      const image = parseElf(readGuestImage(name), RAM);
      expect(image.entry).toBe(0x8000_0000);
    }
    expect(parseElf(buildElf(good), RAM).segments).toHaveLength(1);
  });

  it('refuses a truncated file, naming what is missing', () => {
    const full = readGuestImage('selftest');
    expect(refusal(full.subarray(0, 20)).message).toMatch(/shorter than an ELF header/);
    expect(refusal(full.subarray(0, 60)).message).toMatch(/program headers .* truncated/);
    expect(refusal(full.subarray(0, 0x1800)).message).toMatch(/segment \d+: .*past the end .* truncated/);
  });

  it('refuses something that is not an ELF file', () => {
    expect(refusal(new TextEncoder().encode('#!/bin/sh\necho this is not an image at all, really not\n')).message).toMatch(/no ELF magic/);
  });

  it('refuses the wrong class, byte order, type or machine', () => {
    expect(refusal(buildElf({ ...good, elfClass: 2 })).message).toMatch(/ELFCLASS32/);
    expect(refusal(buildElf({ ...good, dataEncoding: 2 })).message).toMatch(/little-endian/);
    expect(refusal(buildElf({ ...good, type: 3 })).message).toMatch(/ET_EXEC/);
    expect(refusal(buildElf({ ...good, machine: 62 })).message).toMatch(/machine 62 is not EM_RISCV/);
  });

  it('refuses segments outside RAM, overlapping, or larger in the file than in memory', () => {
    const below = refusal(buildElf({ segments: [{ address: 0x1000_0000, data: code(finishPass()) }] }));
    expect(below.message).toMatch(/outside RAM 0x80000000\.\.0x81000000/);
    expect(below.advice).toMatch(/--ram/);
    expect(refusal(buildElf({ segments: [{ address: 0x80ff_fff0, data: new Uint8Array(32) }] })).message).toMatch(/outside RAM/);
    const data = code(finishPass());
    expect(refusal(buildElf({ segments: [{ address: 0x8000_0000, data }, { address: 0x8000_0004, data }] })).message).toMatch(/overlap/);
    expect(refusal(buildElf({ segments: [{ address: 0x8000_0000, data, memorySize: 4 }] })).message).toMatch(/exceeds memory size/);
  });

  it('refuses an entry point outside the loaded code', () => {
    expect(refusal(buildElf({ ...good, entry: 0x8010_0000 })).message).toMatch(/entry point 0x80100000 is not inside/);
  });
});

// The built-in programs' `--guest-args`, checked on the host before a guest
// starts. The programs read them with param_u32/param_str (programs/common/
// lib.c), which take an unknown key or a malformed number silently as the
// default: `wss=abc` ran memwork over its 256 KiB default and the demo still
// said verified; `wss=2G` on 16 MiB wrapped around and trapped in the guest.
// ELF files given by path carry their own conventions and are not checked.
import { GuestConfigError } from './errors.ts';
import { GUEST_PROGRAMS, type GuestProgram } from './guest-images.ts';

type ParamSpec =
  /** Digits with an optional K, M or G suffix, as param_u32 reads them. */
  | { readonly kind: 'number'; readonly min?: number; readonly max?: number }
  | { readonly kind: 'choice'; readonly values: readonly string[] };

const count = (min = 0, max?: number): ParamSpec => ({ kind: 'number', min, max });

/** Each program's parameters, as its C source reads them. */
export const PROGRAM_PARAMS: Record<GuestProgram, Record<string, ParamSpec>> = {
  memwork: {
    wss: count(4096),
    pattern: { kind: 'choice', values: ['sequential', 'random', 'hotcold'] },
    write: count(0, 100),
    passes: count(),
    beat: count(),
  },
  life: { gens: count(), seed: count(), density: count(0, 100) },
  // diskio.c: MAX_SECTORS is 128.
  diskio: { blocks: count(), sectors: count(1, 128), rounds: count() },
  selftest: {},
};

const U32_MAX = 0xffff_ffff;
const SUFFIX_SHIFT: Record<string, number> = { '': 0, k: 10, m: 20, g: 30 };

/** Throws GuestConfigError naming the parameter and what it accepts, unless `args` suit the built-in program `guest`. */
export function checkProgramArgs(guest: string, args: string | undefined, ramSize: number, harts: number): void {
  if (args === undefined || !(GUEST_PROGRAMS as readonly string[]).includes(guest)) return;
  const program = guest as GuestProgram;
  const params = PROGRAM_PARAMS[program];
  const known = Object.keys(params);
  const numbers = new Map<string, { value: string; n: number }>();
  for (const word of args.split(' ').filter((w) => w !== '')) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new GuestConfigError(`guest args are "key=value key=value"; "${word}" is not`);
    const key = word.slice(0, eq);
    const value = word.slice(eq + 1);
    const spec = params[key];
    if (!spec) {
      const takes = known.length > 0 ? `its parameters are ${known.join(', ')}` : 'it takes no parameters';
      throw new GuestConfigError(`${program} has no parameter "${key}"; ${takes}`);
    }
    if (spec.kind === 'choice') {
      if (!spec.values.includes(value)) throw new GuestConfigError(`${program}: ${key}=${value} is not one of ${spec.values.join(', ')}`);
      continue;
    }
    const m = /^(\d+)([kmg]?)$/i.exec(value);
    if (!m) throw new GuestConfigError(`${program}: ${key}=${value} is not a whole number (with an optional K, M or G suffix)`);
    const n = Number(m[1]) * 2 ** SUFFIX_SHIFT[m[2].toLowerCase()];
    const max = Math.min(spec.max ?? U32_MAX, U32_MAX);
    const min = spec.min ?? 0;
    if (n < min || n > max) throw new GuestConfigError(`${program}: ${key}=${value} is out of range: ${min} to ${max}`);
    numbers.set(key, { value, n });
  }
  const wss = numbers.get('wss');
  // The program checks the exact fit against where its heap starts; this catches what cannot fit at all.
  if (program === 'memwork' && wss !== undefined && wss.n * harts > ramSize - 4096) {
    throw new GuestConfigError(`memwork: wss=${wss.value} for each of ${harts} vCPU(s) does not fit in ${ramSize / 1048576} MiB of RAM; lower wss or raise --ram`);
  }
}

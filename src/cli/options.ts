// What every subcommand shares: option parsers that refuse bad values with a
// message naming the expected form, address parsing, the machine-readable
// report channel, and how a typed error reaches the user.
import { writeSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseSize } from '../guest/memory-map.ts';
import { PostcopyError } from '../errors.ts';

export function integer(min: number, max: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

export function size(text: string): number {
  try {
    return parseSize(text);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** --max-bandwidth and --max-postcopy-bandwidth on every command that starts a migration: QEMU's parameters of those names. */
export function withBandwidthOptions(command: Command): Command {
  return command
    .option('--max-bandwidth <bytes/s>', 'cap precopy rounds while the guest runs, in bytes per second, e.g. 100M (K, M, G: KiB, MiB, GiB); 0: unlimited (the default)', size)
    .option('--max-postcopy-bandwidth <bytes/s>', 'cap the postcopy background push in bytes per second, e.g. 300M (K, M, G: KiB, MiB, GiB); requested pages are never held back; 0: unlimited (the default)', size);
}

/** The options that describe a guest; --guest is required unless it has a default. */
export function withGuestOptions(command: Command, defaultGuest?: string): Command {
  const guest = new Option('--guest <name|path.elf>', 'memwork, life, diskio, selftest, or an ELF32 RISC-V image');
  if (defaultGuest === undefined) guest.makeOptionMandatory();
  else guest.default(defaultGuest);
  return command
    .addOption(guest)
    .addOption(new Option('--ram <size>', 'guest RAM, 16M to 2G').argParser(size).default(64 * 1024 * 1024, '64M'))
    .option('--vcpus <n>', 'harts, 1 to 4', integer(1, 4), 1)
    .option('--guest-args <args>', 'parameters for the guest program, "key=value ..."');
}

export interface HostPort {
  host: string;
  port: number;
}

/** "HOST:PORT", "[::1]:PORT" or ":PORT" (loopback). Port 0 picks a free one. */
export function hostPort(text: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`expected HOST:PORT such as 127.0.0.1:4444 (got "${text}")`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/** The shared migration token: --token, else $POSTCOPY_TOKEN. */
export function tokenFrom(option: string | undefined, command: string): string {
  const token = option ?? process.env.POSTCOPY_TOKEN;
  if (!token) {
    throw new PostcopyError('CLI_ERR_TOKEN', `${command} needs the migration token: pass --token TOKEN or set POSTCOPY_TOKEN (the same on both sides; generate one with \`openssl rand -hex 32\`)`);
  }
  return token;
}

/**
 * One JSON line on the file descriptor a parent process passed (--report-fd):
 * how `postcopy demo` learns ports and results without parsing the console.
 */
export function reporter(fd: number | undefined): (event: Record<string, unknown>) => void {
  return (event) => {
    if (fd !== undefined) writeSync(fd, `${JSON.stringify(event)}\n`);
  };
}

/** Runs a command's action; a typed error becomes one clear line and exit code 2. */
export function reportErrors<A extends unknown[]>(command: string, action: (...args: A) => Promise<void>) {
  return async (...args: A): Promise<void> => {
    try {
      await action(...args);
    } catch (err) {
      if (!(err instanceof PostcopyError)) throw err;
      process.stderr.write(`postcopy ${command}: ${err.message} [${err.code}]${err.advice ? `\n  ${err.advice}` : ''}\n`);
      process.exitCode = 2;
    }
  };
}

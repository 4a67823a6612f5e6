// Runs `postcopy` subcommands as real child processes for the integration
// suites: nothing here fakes the other side of a migration.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { ChildPostcopy } from '../../src/cli/child-postcopy.ts';
import { ControlClient } from '../../src/cli/control-client.ts';
import type { DemoSummary } from '../../src/cli/demo.ts';
import { generateToken } from '../../src/protocol/auth.ts';
import type { MigrationState } from '../../src/protocol/state.ts';

export const BIN = fileURLToPath(new URL('../../bin/postcopy.js', import.meta.url));
const run = promisify(execFile);

/**
 * A memwork guest that has written all of its 8 MiB working set once it
 * prints "memwork: pass 1" (about 2 million instructions in), so a migration
 * a little later has data pages for the push to carry.
 */
export const WRITTEN_8M_GUEST = ['--guest', 'memwork', '--guest-args', 'wss=8M pattern=sequential write=50 passes=0 beat=1', '--ram', '32M'];

/**
 * A guest precopy cannot keep up with, run to DIRTYING_INSTRUCTIONS: 4096
 * pages dirtied a round, and ~10x the precopy's own time still to run (400M
 * instructions at ~90 MIPS against rounds of ~0.5 s at most). A guest that
 * reaches its last instruction stops dirtying, and precopy then rightly
 * converges: CI once saw that with 60M instructions under load.
 */
export const DIRTYING_GUEST = ['--guest', 'memwork', '--guest-args', 'wss=16M pattern=random write=100 passes=0 beat=1000000', '--ram', '64M'];
export const DIRTYING_INSTRUCTIONS = '400000000';
/** A downtime limit only a round in which the guest wrote nothing fits (1 ms takes ~300 pages here). */
export const NEVER_FITS_MS = 0.001;
/**
 * Paces DIRTYING_GUEST's precopy rounds to ~125 ms (16 MiB at 128 MiB/s): a
 * round it leaves clean then needs its vCPU starved that long. Unpaced
 * rounds take ~5-10 ms, and in CI one came out clean even under
 * NEVER_FITS_MS. Slower pacing lets the guest reach its last instruction.
 */
export const PACED_ROUNDS = { maxBandwidth: 128 * 1024 * 1024 } as const;


export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number;
}

export async function postcopy(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...process.env, POSTCOPY_LOG: 'warn', ...env }, maxBuffer: 64 << 20 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : 1 };
  }
}

/** `postcopy demo --json ...`: the summary, or a failure carrying the demo's stderr. */
export async function demo(args: string[]): Promise<DemoSummary> {
  const r = await postcopy(['demo', '--json', ...args]);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (!last.startsWith('{')) throw new Error(`postcopy demo ${args.join(' ')} printed no summary (exit ${r.code}):\n${r.stderr.slice(-4000)}`);
  return JSON.parse(last) as DemoSummary;
}

/** `postcopy run --json`: console and result of the same guest without migrating. */
export async function reference(args: string[]): Promise<{ console: string; stateHash: string }> {
  const r = await postcopy(['run', '--json', ...args]);
  const cut = r.stdout.lastIndexOf('\n', r.stdout.length - 2);
  return { console: r.stdout.slice(0, cut + 1), stateHash: (JSON.parse(r.stdout.slice(cut + 1)) as { stateHash: string }).stateHash };
}

/** `postcopy` children sharing one migration token, reporting JSON events on fd 3; killAll() in a finally. */
export function childGroup(): { token: string; spawn(name: string, args: string[]): ChildPostcopy; killAll(): void } {
  const env = { POSTCOPY_TOKEN: generateToken(), POSTCOPY_LOG: 'warn' };
  const children: ChildPostcopy[] = [];
  return {
    token: env.POSTCOPY_TOKEN,
    spawn(name, args) {
      const c = new ChildPostcopy(name, [...args, '--report-fd', '3'], { env });
      children.push(c);
      return c;
    },
    killAll() {
      for (const c of children) c.kill();
    },
  };
}

export interface SourceAndDestination {
  readonly destination: ChildPostcopy;
  readonly source: ChildPostcopy;
  /** The source's control endpoint, and a client for it. */
  readonly controlUrl: string;
  readonly control: ControlClient;
  /** The destination's ws:// URL, for `migrate`. */
  readonly to: string;
}

/** A destination and a paused source of `guest`, both running it to `instructions`, each listening. */
export async function sourceAndDestination(group: ReturnType<typeof childGroup>, guest: string[], instructions: string): Promise<SourceAndDestination> {
  const destination = group.spawn('destination 1', ['destination', '--listen', '127.0.0.1:0', '--instructions', instructions]);
  const source = group.spawn('source', ['source', ...guest, '--instructions', instructions, '--listen', '127.0.0.1:0', '--paused']);
  const controlUrl = (await source.waitFor('listening')).control as string;
  const to = (await destination.waitFor('listening')).url as string;
  return { destination, source, controlUrl, control: new ControlClient(controlUrl, group.token), to };
}

/**
 * After a migration that left the guest on the source: migrates it again,
 * with postcopy, to a fresh destination and checks it ends exactly where a
 * run that never migrated does (nothing was lost on the first attempt).
 */
export async function expectMigratesIntact(
  group: ReturnType<typeof childGroup>,
  source: ChildPostcopy,
  control: ControlClient,
  guest: string[],
  instructions: string,
): Promise<void> {
  const second = group.spawn('destination 2', ['destination', '--listen', '127.0.0.1:0', '--instructions', instructions]);
  await control.migrate({ to: (await second.waitFor('listening')).url as string, mode: 'postcopy' });
  expect((await control.migrationEnd()).status).toBe('completed');
  await expectArrivedIntact(source, second, guest, instructions);
}

/** The destination ran the guest on to `instructions` and ended exactly where a run that never migrated does: state and console. */
export async function expectArrivedIntact(source: ChildPostcopy, destination: ChildPostcopy, guest: string[], instructions: string): Promise<void> {
  const finished = await destination.waitFor('finished');
  const straight = await reference([...guest, '--instructions', instructions]);
  expect(finished.stateHash).toBe(straight.stateHash);
  expect(source.consoleText + destination.consoleText).toBe(straight.console);
}

const haveScript = spawnSync('script', ['--version']).status === 0;

/** True (and says why) when `suite` must be skipped: no script(1) here to give a child a pseudo-terminal. */
export function noTerminal(suite: string): boolean {
  if (!haveScript) console.log(`${suite} skipped: they need script(1) from util-linux (Debian: bsdutils) for a pseudo-terminal`);
  return !haveScript;
}

export interface ProcessEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A `postcopy` subcommand as a plain child process, no terminal: its output kept as it comes, to signal or close under it. */
export class PlainPostcopy {
  readonly process: ChildProcess;
  stdout = '';
  stderr = '';
  private readonly closed: Promise<ProcessEnd>;

  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.process = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.process.stdout!.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.process.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    // 'close', not 'exit': at 'exit' the last lines may still be in the pipes.
    this.closed = new Promise((resolve) => this.process.once('close', (code, signal) => resolve({ code, signal })));
  }

  get ended(): boolean {
    return this.process.exitCode !== null || this.process.signalCode !== null;
  }

  exit(): Promise<ProcessEnd> {
    return this.closed;
  }

  /** Resolves once its stderr holds `text`; rejects, with that stderr, if it ends first. */
  waitForStderr(text: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.stderr.includes(text)) resolve();
      };
      this.process.stderr!.on('data', check);
      check();
      void this.closed.then(() => reject(new Error(`postcopy ${this.process.spawnargs[2]} ended before writing ${JSON.stringify(text)}:\n${this.stderr}`)));
    });
  }
}

/**
 * Polls the source until its migration is `status` with at least `rounds`
 * precopy rounds ended; throws if `driver`, the command that started it, ends first.
 */
export async function untilMigration(control: ControlClient, status: MigrationState, { rounds = 0, driver }: { rounds?: number; driver?: PlainPostcopy } = {}): Promise<void> {
  for (;;) {
    if (driver?.ended) throw new Error(`postcopy ${driver.process.spawnargs[2]} ended before the migration was ${status}:\n${driver.stderr}`);
    const info = await control.infoMigrate();
    if (info !== null && info.status === status && info.precopyRounds >= rounds) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A `postcopy` subcommand on a pseudo-terminal (under script(1)), as a person runs it: what it shows, and a way to type. */
export class TerminalPostcopy {
  readonly process: ChildProcess;
  private output = '';
  private readonly watchers: { pattern: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  private readonly closed: Promise<number | null>;

  constructor(
    private readonly args: string[],
    env: NodeJS.ProcessEnv,
  ) {
    const command = [process.execPath, BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
    this.process = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    // 'close', not 'exit': at 'exit' the last of the output may still be in the pipe.
    this.closed = new Promise((resolve) => this.process.once('close', (code) => resolve(code)));
    // UTF-8 across chunk boundaries: progress bars draw with multi-byte characters.
    this.process.stdout!.setEncoding('utf8');
    this.process.stdout!.on('data', (chunk: string) => {
      this.output += chunk;
      for (const w of [...this.watchers]) {
        const m = this.output.match(w.pattern);
        if (m) {
          this.watchers.splice(this.watchers.indexOf(w), 1);
          w.resolve(m);
        }
      }
    });
  }

  /** Everything the terminal has shown so far. */
  get shown(): string {
    return this.output;
  }

  /** Resolves once the terminal has shown `pattern` (anywhere in its output so far). */
  async waitFor(pattern: RegExp): Promise<RegExpMatchArray> {
    const seen = this.output.match(pattern);
    if (seen) return seen;
    const exited = new Promise<never>((_resolve, reject) =>
      void this.closed.then((code) => reject(new Error(`postcopy ${this.args[0]} exited (code ${code}) before showing ${pattern}; it showed:\n${this.output.slice(-3000)}`))),
    );
    return Promise.race([new Promise<RegExpMatchArray>((resolve) => this.watchers.push({ pattern, resolve })), exited]);
  }

  /** Types a line and Enter, as a person would (raw mode: Enter is a carriage return). */
  type(line: string): void {
    this.process.stdin!.write(`${line}\r`);
  }

  /** Its exit code, once the terminal has shown everything it wrote. */
  exit(): Promise<number | null> {
    return this.closed;
  }

  kill(): void {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill('SIGTERM');
  }
}

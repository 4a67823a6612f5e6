// A `postcopy` subcommand run as a child process: its console (stdout) is
// kept and optionally relayed, its logs go to our stderr, and the JSON events
// it writes on file descriptor 3 (pass `--report-fd 3`) are awaited by name.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PostcopyError } from '../errors.ts';

const BIN = fileURLToPath(new URL('../../bin/postcopy.js', import.meta.url));

export type ChildEvent = { event: string } & Record<string, unknown>;

export class ChildPostcopy {
  readonly process: ChildProcess;
  private readonly events: ChildEvent[] = [];
  private readonly waiters: { name: string; resolve: (e: ChildEvent) => void }[] = [];
  private stdout: Buffer[] = [];
  private exited: Promise<number>;

  constructor(
    readonly name: string,
    args: string[],
    options: { relayConsole?: boolean; env?: NodeJS.ProcessEnv } = {},
  ) {
    this.process = spawn(process.execPath, [BIN, ...args], {
      stdio: ['ignore', 'pipe', 'inherit', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    this.process.stdout!.on('data', (chunk: Buffer) => {
      this.stdout.push(chunk);
      if (options.relayConsole) process.stdout.write(chunk);
    });
    createInterface({ input: this.process.stdio[3] as NodeJS.ReadableStream }).on('line', (line) => this.onEvent(line));
    // 'close', not 'exit': at 'exit' the end of its console (the reference run's
    // figures, a verified run's last lines) may still be in the pipe.
    this.exited = new Promise((resolve) => this.process.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  }

  /** Resolves with the named event; rejects if the child exits first. */
  async waitFor(name: string): Promise<ChildEvent> {
    const seen = this.events.find((e) => e.event === name);
    if (seen) return seen;
    const event = new Promise<ChildEvent>((resolve) => this.waiters.push({ name, resolve }));
    const exit = this.exited.then((code) => {
      throw new PostcopyError('DEMO_ERR_CHILD', `the ${this.name} process exited (code ${code}) before reporting "${name}"; its log is above`);
    });
    return Promise.race([event, exit]);
  }

  get consoleText(): string {
    return Buffer.concat(this.stdout).toString('latin1');
  }

  exit(): Promise<number> {
    return this.exited;
  }

  kill(): void {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill('SIGTERM');
  }

  private onEvent(line: string): void {
    let event: ChildEvent;
    try {
      event = JSON.parse(line) as ChildEvent;
    } catch {
      return;
    }
    this.events.push(event);
    for (const w of this.waiters.filter((x) => x.name === event.event)) w.resolve(event);
  }
}
